"""Load a converted dataset with LLaMA-Factory's own code and print what it kept, as JSON.

Run as a script (a fresh process, as `llamafactory-cli train` is): python
llamafactory_load.py MODEL DATASET_DIR NAME OUTPUT_DIR. Prints the number of
samples per split after LLaMA-Factory's alignment and tokenisation, and for
each train sample its aligned prompt and decoded tokens.
"""

import json
import sys


def main(model: str, dataset_dir: str, name: str, output_dir: str) -> None:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer

    model_args, data_args, training_args, _, _ = get_train_args(
        {
            "model_name_or_path": model,
            "stage": "sft",
            "do_train": True,
            "finetuning_type": "lora",
            "dataset": f"{name}_train",
            "eval_dataset": f"{name}_val,{name}_test",
            "eval_on_each_dataset": True,
            "dataset_dir": dataset_dir,
            "template": "qwen",
            "cutoff_len": 8192,
            "output_dir": output_dir,
            "report_to": "none",
        }
    )
    tokenizer = load_tokenizer(model_args)["tokenizer"]
    template = get_template_and_fix_tokenizer(tokenizer, data_args)
    aligned = _get_merged_dataset([f"{name}_train"], model_args, data_args, training_args, "sft")
    module = get_dataset(template, model_args, data_args, training_args, "sft", tokenizer)
    tokenized = {"train": module["train_dataset"]}
    tokenized.update({key.rsplit("_", 1)[1]: ds for key, ds in module["eval_dataset"].items()})
    result = {
        "kept": {split: len(ds) for split, ds in tokenized.items()},
        "aligned": [{"prompt": r["_prompt"], "system": r["_system"]} for r in aligned],
        "decoded": [tokenizer.decode(r["input_ids"]) for r in tokenized["train"]],
    }
    print("RESULT " + json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main(*sys.argv[1:5])
