"""Training data written by a model from a team's own documents, for doctors to review.

drafts  chunks -> question-answer drafts from an OpenAI-compatible endpoint, resumable
checks  the drafts filtered: short, banned claims, ungrounded, duplicate questions
run     the whole `data synthesize` run: read, chunk, draft, check, write, account
"""
