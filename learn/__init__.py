"""Training, validating and ablating learned searchers: PPO meta-training (:mod:`learn.train_ppo`) and the comparison
of a learned policy with its fixed rules and among policies on validation instances (:mod:`learn.ablation`).

A learned searcher at run time (``policies.ppo``) needs nothing from here: only a committed policy file.
"""
