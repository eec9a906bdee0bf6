"""What people say about the models: clinician review studies, and the store behind them.

store     the SQLAlchemy schema (SQLite by default, PostgreSQL for teams), versioned
studies   a blind A/B study from prediction files: items, pairs, raters, assignments
rating    a rater's queue, submitting and revising ratings, arbitration
sheets    the same ratings through spreadsheets (xlsx or csv)
report    win rates, agreement, position bias, Bradley-Terry, from the store
page      the raters' and the arbiter's web page
"""
