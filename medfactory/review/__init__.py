"""Clinician review: blind studies of two versions' answers, or of one model's drafts.

studies       a study from prediction files: items, pairs, raters, assignments
rating        a rater's queue, submitting and revising ratings, arbitration
settled       the one rule of a settled verdict, read by every report and export
sheets        the same ratings through spreadsheets (xlsx or csv)
page          the raters' and the arbiter's web page
report        win rates, agreement, position bias, Bradley-Terry (draft_report: drafts)
calibration   an LLM judge's agreement with the clinicians' settled verdicts
exports       settled verdicts and corrections as training data
"""
