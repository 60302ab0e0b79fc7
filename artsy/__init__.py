"""artsy: a continual learner (frozen backbone, EASE adapters, per-task gates driven by synsim.rule).

Entry points: `python -m artsy.run`, `python -m artsy.figures`, `python -m artsy.demo`.
"""
