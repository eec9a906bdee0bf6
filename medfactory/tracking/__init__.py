"""Model versions and their lineage on MLflow: what trained what, from which data and whose
judgments, and who promoted it.

settings      where runs are recorded (--tracking-uri, MLFLOW_TRACKING_URI, saves/mlflow), if
client        an MLflow client on that store, checked to answer; one clear error when it does not
hashes        content hashes: files, a base model's config and weight index, a recipe
environment   the project's git commit and the versions of the engines
datasets      a recipe's datasets and their manifests (written at registration by converters/)
record        a `train`/`export` run recorded and its model version registered
refs          NAME@VERSION, NAME@ALIAS, models:/..., or an output folder -> one model version
versions      list and show: versions with their aliases, parents and scores
lineage       version <- run <- recipe + datasets <- source files / studies / experiments <- people
card          the version's Hugging Face model card (README.md in its folder)
promote       an alias set on a version, with who and when
ui            MLflow's own UI (`mlflow server`) on the same store
errors        what a user can fix, as one line each

mlflow is imported inside the functions that talk to the store: a command that records
pays for it only when it records.
"""
