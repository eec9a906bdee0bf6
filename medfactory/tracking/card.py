"""A version's Hugging Face model card: README.md in its folder, with YAML front matter
(base_model, datasets, language, license, tags, library_name, and model-index results for
the scores it has) and a body in Chinese or English: intended use and its limits, the
training data with their counts and de-identification, the clinicians' judgments behind
them, the scores against the parent, and the recipe.

It replaces the stub transformers leaves in each output folder. The card names the
studies and experiments and how many people took part, not who: the names are in the
lineage, for auditors, not in a file that may be published with the weights.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from medfactory.tracking.errors import TrackingError
from medfactory.tracking.lineage import lineage
from medfactory.tracking.versions import show_version

LANGS = ("en", "zh")
SCORE_PREFIXES = ("eval_", "predict_")  # evaluation figures, not training bookkeeping

TEXT = {
    "en": {
        "title": "Model card: {version}",
        "summary": "`{base}` fine-tuned ({stage}) with medfactory (LLaMA-Factory {lf}).",
        "use": "Intended use and limits",
        "use_body": (
            "- For research and for drafting answers to medical questions that a clinician "
            "then reviews.\n"
            "- **Not a medical device.** It does not diagnose, treat or replace a clinician; "
            "a clinician reviews every answer before it reaches a patient.\n"
            "- It can be wrong, out of date or unsafe; it was trained on the data below only."
        ),
        "lineage": "Lineage",
        "base": "Base model",
        "parent": "Parent version",
        "none": "none (trained from the base)",
        "data": "Training data",
        "data_head": "| dataset | use | records | made by | de-identification | rejected |",
        "people": "Human judgments",
        "people_line": "- {origin}: {count}",
        "scores": "Evaluation",
        "score_head": "| metric | this version | parent |",
        "no_scores": "No evaluation recorded yet (`medfactory eval ...`).",
        "recipe": "Training recipe",
        "recipe_line": "`{path}` (sha256 `{sha}`), as run:",
    },
    "zh": {
        "title": "模型卡：{version}",
        "summary": "基于 `{base}` 的 {stage} 微调模型，由 medfactory（LLaMA-Factory {lf}）训练。",
        "use": "预期用途与局限",
        "use_body": (
            "- 用于研究，以及起草医疗问题的回答，由临床医生审阅后使用。\n"
            "- **本模型不是医疗器械。** 不能用于诊断或治疗，不能替代临床医生；"
            "每一条回答在到达患者之前都须经临床医生审阅。\n"
            "- 回答可能错误、过时或不安全；模型只学习了下列数据。"
        ),
        "lineage": "来源",
        "base": "基座模型",
        "parent": "上一版本",
        "none": "无（直接由基座模型训练）",
        "data": "训练数据",
        "data_head": "| 数据集 | 用途 | 条数 | 生成方式 | 去标识化 | 剔除 |",
        "people": "人工评判",
        "people_line": "- {origin}：{count}",
        "scores": "评测",
        "score_head": "| 指标 | 本版本 | 上一版本 |",
        "no_scores": "尚无评测记录（`medfactory eval ...`）。",
        "recipe": "训练配方",
        "recipe_line": "`{path}`（sha256 `{sha}`），实际运行参数：",
    },
}


def write_card(client, ref: str, uri: str, lang: str = "en", license_id: str = "other") -> Path:
    """README.md in the version's folder; its path."""
    if lang not in LANGS:
        raise TrackingError(f"--lang {lang!r}: choose one of {', '.join(LANGS)}")
    shown = show_version(client, ref, uri)
    tree = lineage(client, ref, uri)
    folder = Path(shown["output_dir"])
    if not folder.is_dir():
        raise TrackingError(
            f"{shown['version']}: its folder {folder} is gone; the card is written beside the "
            "model, so restore the folder or run the recipe again"
        )
    card = build_card(shown, tree, lang, license_id)
    path = folder / "README.md"
    card.save(path)
    return path


def build_card(shown: dict, tree: dict, lang: str, license_id: str = "other"):
    from huggingface_hub import ModelCard, ModelCardData
    from huggingface_hub.repocard_data import EvalResult

    text = TEXT[lang]
    trained = [d for d in tree["datasets"] if d["context"] == "train"] or tree["datasets"]
    evaluated = next((d["name"] for d in tree["datasets"] if d["context"] == "eval"), None)
    scores = {k: v for k, v in shown["scores"].items() if k.startswith(SCORE_PREFIXES)
              or "." in k}  # fmt: skip
    base = shown["base_model"].get("name", "")
    lora = shown["finetuning_type"] in ("lora", "qlora") and shown["command"] != "export"
    results = [
        EvalResult(task_type="text-generation", dataset_type=evaluated or "held-out",
                   dataset_name=evaluated or "held-out", metric_type=key, metric_value=value)
        for key, value in scores.items()
    ]  # fmt: skip
    data = ModelCardData(
        base_model=base,
        datasets=[d["name"] for d in trained],
        language=["zh", "en"],
        license=license_id,
        library_name="peft" if lora else "transformers",
        tags=["medical", "llama-factory", "medfactory", shown["stage"] or "sft",
              *(["lora"] if lora else [])],
        model_name=shown["version"],
        eval_results=results or None,
    )  # fmt: skip
    content = f"---\n{data.to_yaml()}\n---\n\n" + body(shown, tree, text, scores)
    return ModelCard(content)


def body(shown: dict, tree: dict, text: dict, scores: dict) -> str:
    lf = shown["run"]["versions"].get("llamafactory", "?")
    base = shown["base_model"]
    lines = [
        f"# {text['title'].format(version=shown['version'])}", "",
        text["summary"].format(stage=shown["stage"] or "sft", base=base.get("name", "?"), lf=lf),
        "", f"## {text['use']}", "", text["use_body"], "", f"## {text['lineage']}", "",
        f"- {text['base']}: `{base.get('name', '?')}` (sha256 `{base.get('sha256', '')[:16]}`)",
        f"- {text['parent']}: "
        + (f"`{shown['parent']['version']}`" if shown["parent"] else text["none"]),
        "", f"## {text['data']}", "", text["data_head"],
        _rule(text["data_head"]),
    ]  # fmt: skip
    people = []
    for dataset in tree["datasets"]:
        deid = dataset["deid"]
        replaced = deid.get("replaced") or deid.get("identifiers_scrubbed") or {}
        deid_text = (deid.get("level") or "scrubbed") + (
            f" ({sum(replaced.values())} replaced)" if replaced else ""
        )
        rejected = sum(dataset["rejected"].values()) if dataset["rejected"] else 0
        lines.append(f"| {dataset['name']} | {dataset['context']} | {dataset['records']} | "
                     f"{dataset['converter'] or '-'} | {deid_text} | {rejected} |")  # fmt: skip
        origin = dataset["origin"]
        where = (
            origin.get("study")
            and f"review study `{origin['study']}`"
            or (origin.get("experiment") and f"A/B experiment `{origin['experiment']}`")
        )
        if where:
            counts = ", ".join(
                f"{len(v)} {k.replace('_', ' ')}" for k, v in dataset["people"].items()
            )
            people.append(text["people_line"].format(origin=where, count=counts or "-"))
    if people:
        lines += ["", f"## {text['people']}", "", *people]
    lines += ["", f"## {text['scores']}", ""]
    if scores:
        parent = (shown["parent"] or {}).get("scores", {})
        lines += [text["score_head"], _rule(text["score_head"])]
        lines += [f"| {k} | {v:.4g} | " + (f"{parent[k]:.4g}" if k in parent else "-") + " |"
                  for k, v in scores.items()]  # fmt: skip
    else:
        lines.append(text["no_scores"])
    recipe = shown["recipe"]
    arguments = yaml.safe_dump(recipe["arguments"], allow_unicode=True).strip()
    lines += ["", f"## {text['recipe']}", "",
              text["recipe_line"].format(path=recipe["path"], sha=recipe["sha256"][:16]), "",
              "```yaml", arguments, "```", ""]  # fmt: skip
    return "\n".join(lines)


def _rule(header: str) -> str:
    return "|" + "---|" * (header.count("|") - 1)
