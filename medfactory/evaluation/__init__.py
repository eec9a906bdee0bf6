"""Evaluation: how good is a model's output.

metrics    BLEU-4 and ROUGE-1/2/L exactly as LLaMA-Factory scores them, fast
scoring    a generated_predictions.jsonl -> scores.json (with or without <think>)
compare    runs against a baseline, with paired-bootstrap intervals; `eval compare`
generate   answers to a registered test split from a served model; `eval endpoint`
exam       multiple-choice accuracy through EvalScope; `eval exam`
judge      rubric grading by a judge model; `eval judge`
safety     how often data or answers break the safety rules
progress   how a long evaluation reports progress to whoever shows it
"""
