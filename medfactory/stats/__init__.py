"""Every interval, agreement and rating statistic, once, from well-kept libraries.

intervals   Wilson (and Newcomb) intervals of shares
bootstrap   bootstrap intervals of a mean and of a paired difference
clustered   rates and differences clustered by user: cluster bootstrap, GEE p-value
agreement   Cohen's kappa, Krippendorff's alpha, paired differences
ratings     Bradley-Terry ratings from pairwise verdicts
"""
