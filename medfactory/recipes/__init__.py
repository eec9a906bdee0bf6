"""Recipes: model presets, rendering and checking the YAML, running it, memory estimates.

presets   templates/presets.yaml read and validated (`Preset`, `Architecture`)
render    jinja2 templates -> llamafactory_configs/<preset>/<stage>_<method>.yaml
check     `recipe check`: fresh, parsed by LLaMA-Factory's own parser, datasets registered
run       `llamafactory-cli train|export RECIPE` from .venv, single or multi node
vram      the GPU memory a run needs, before it starts
webui     LLaMA-Factory's WebUI opened on our datasets and a preset's model
"""
