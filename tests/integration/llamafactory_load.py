"""Load registered datasets with LLaMA-Factory's own code and print what it kept, as JSON.

Run as a script (a fresh process, as `llamafactory-cli train` is): python
llamafactory_load.py MODEL JOBS, where JOBS is a JSON list of [DATASET_DIR,
NAME, OUTPUT_DIR, STAGE]. One process loads them all: importing LLaMA-Factory
is most of a load's time. Prints one `RESULT` line per job, in order: the
number of samples per split (NAME_train and whichever of NAME_val and NAME_test
are registered) after LLaMA-Factory's alignment and tokenisation for STAGE
(sft, rm for DPO pairs, kto), and for each train sample its aligned prompt and,
for sft, its decoded tokens.
"""

import json
import sys
from pathlib import Path


def load(model: str, dataset_dir: str, name: str, output_dir: str, stage: str = "sft") -> dict:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    registry = json.loads((Path(dataset_dir) / "dataset_info.json").read_text())
    evaluated = [f"{name}_{split}" for split in ("val", "test") if f"{name}_{split}" in registry]
    arguments = {
        "model_name_or_path": model,
        "stage": stage,
        "do_train": True,
        "finetuning_type": "lora",
        "dataset": f"{name}_train",
        "dataset_dir": dataset_dir,
        "template": "qwen",
        "cutoff_len": 8192,
        "output_dir": output_dir,
        "report_to": "none",
    }
    if evaluated:
        arguments |= {"eval_dataset": ",".join(evaluated), "eval_on_each_dataset": True}
    model_args, data_args, training_args, _, _ = get_train_args(arguments)
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    aligned = _get_merged_dataset([f"{name}_train"], model_args, data_args, training_args, stage)
    module = get_dataset(template, model_args, data_args, training_args, stage, tokenizer)
    tokenized = {"train": module["train_dataset"]}
    tokenized.update(
        {key.rsplit("_", 1)[1]: ds for key, ds in (module.get("eval_dataset") or {}).items()}
    )
    result = {
        "kept": {split: len(ds) for split, ds in tokenized.items()},
        "aligned": [{"prompt": r["_prompt"], "system": r["_system"]} for r in aligned],
    }
    if stage == "sft":
        result["decoded"] = [tokenizer.decode(r["input_ids"]) for r in tokenized["train"]]
    return result


def main(model: str, jobs: str) -> None:
    for job in json.loads(jobs):
        print("RESULT " + json.dumps(load(model, *job), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
