"""`petra reproduce`: the three papers' claims, run at CPU scale with seeds, and the report.

`claims` is the registry (what each paper claims, where, and petra's protocol), `runner`
runs claims into results JSON (resumable), `analyses` and `measures` compute what is not a
run's own metric, and `report` writes REPRODUCTION.md from the results JSON alone.
"""

from petra.reproduce.claims import CLAIMS, Arm, Claim, Comparison, get_claim
from petra.reproduce.runner import list_claims, reproduce, run_claim

__all__ = [
    "CLAIMS",
    "Arm",
    "Claim",
    "Comparison",
    "get_claim",
    "list_claims",
    "reproduce",
    "run_claim",
]
