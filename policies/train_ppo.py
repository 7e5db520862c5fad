"""Meta-train the ``ppo`` searcher's policy on cheap synthetic tasks (no real evaluation is spent).

    python -m policies.train_ppo --space joint --steps 60000 --out policies/pretrained/ppo_joint.zip [--seed 0]
        [--reward improvement|regret] [--init PREVIOUS.zip]  # --init: continue training a saved policy

Each episode is one search on a fresh :class:`~env.tasks.SyntheticTask` (seed drawn from
``[1_000_000, 2**31)``; tests and docs evaluate on held-out seeds below 1000) with a
budget drawn from ``--budget-low..--budget-high``, run in
:class:`~env.gym_env.CandidateSearchEnv`: the policy picks, at every step, which of the
``K`` GP-proposed candidates gets the evaluation; the reward is the decrease of the
normalised simple regret (``--reward improvement``, default) or minus the regret after
every step (``--reward regret``: area under the regret curve, i.e. anytime performance).

Writes, next to ``--out``: the SB3 policy (``.zip``), the metadata the searcher reports
(``.json``: steps, wall time, hyper-parameters, curve), and the training curve (``.csv``,
``.png``). The curve is printed as a table: per block of episodes, the mean episode
return and the mean final normalised regret (``(bound - best) / (bound - median
random score)``, lower is better; ``bound`` is the task's analytic upper bound, so even
the optimum has a regret above 0).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv
from threadpoolctl import threadpool_limits

from env.gym_env import CandidateSearchEnv

PPO_SETTINGS = dict(
    n_steps=128,  # per env: 4 envs x 128 = 512 transitions (~8 episodes) per update
    batch_size=128,
    n_epochs=4,
    learning_rate=3e-4,
    gamma=0.98,  # as MetaBO: credit reaches ~50 steps, the length of a search
    gae_lambda=0.95,
    ent_coef=0.01,
    clip_range=0.2,
    policy_kwargs=dict(net_arch=[64, 64]),
)
N_ENVS = 4


class EpisodeLog(BaseCallback):
    """Collects ``(timestep, return, final regret, budget)`` of every finished training episode."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, float, float, int]] = []
        self.returns = np.zeros(N_ENVS)

    def _on_step(self) -> bool:
        self.returns += self.locals["rewards"]
        for i, done in enumerate(self.locals["dones"]):
            if done:
                info = self.locals["infos"][i]
                self.rows.append((self.num_timesteps, float(self.returns[i]), float(info["regret"]),
                                  int(info["real_evaluations"])))
                self.returns[i] = 0.0
        return True


def curve_table(rows: list[tuple[int, float, float, int]], blocks: int = 10) -> list[dict[str, float]]:
    """The episode log in ``blocks`` consecutive groups: mean return and mean final regret per group."""
    table = []
    for chunk in np.array_split(np.array(rows, dtype=float), min(blocks, len(rows))):
        table.append({"timesteps": int(chunk[-1, 0]), "episodes": len(chunk),
                      "mean_return": float(chunk[:, 1].mean()), "mean_final_regret": float(chunk[:, 2].mean())})
    return table


def train(space: str, steps: int, out: Path, seed: int = 0, budget: tuple[int, int] = (20, 100),
          reward: str = "improvement", init: Path | None = None) -> dict:
    """Train (from scratch, or on from the policy ``init``), save ``out`` (+ ``.json``, ``.csv``, ``.png``), return the metadata.

    Continuing from ``init`` adds its recorded timesteps and wall time to the totals saved.
    """
    torch.set_num_threads(1)
    began = time.perf_counter()
    with threadpool_limits(limits=1):  # tiny matrices: BLAS threads only cost time on a shared machine
        venv = DummyVecEnv([lambda: CandidateSearchEnv(space, budget=budget, reward=reward) for _ in range(N_ENVS)])
        venv.seed(seed)
        if init is None:
            model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **PPO_SETTINGS)
            before = {"train_wall_s": 0.0}
        else:
            model = PPO.load(init, env=venv, device="cpu", seed=seed)
            before = json.loads(Path(init).with_suffix(".json").read_text())
        log = EpisodeLog()
        if init is not None:  # the earlier episodes, for the curve (timesteps count from the very start)
            with Path(init).with_suffix(".csv").open(newline="") as handle:
                log.rows = [(int(r[0]), float(r[1]), float(r[2]), int(r[3])) for r in list(csv.reader(handle))[1:]]
        model.learn(total_timesteps=steps, callback=log, reset_num_timesteps=init is None)
    wall = time.perf_counter() - began + before["train_wall_s"]
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    table = curve_table(log.rows)
    meta = {
        "space": space, "d": venv.envs[0].d, "timesteps": int(model.num_timesteps), "episodes": len(log.rows),
        "train_wall_s": round(wall, 1), "seed": seed, "continued_from": str(init) if init else None,
        "budget_range": list(budget), "reward": reward,
        "task_seeds": list(venv.envs[0].task_seeds), "n_envs": N_ENVS,
        "ppo": {k: v for k, v in PPO_SETTINGS.items() if k != "policy_kwargs"} | {"net_arch": [64, 64]},
        "stable_baselines3": stable_baselines3.__version__, "curve": table,
    }
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    with out.with_suffix(".csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timesteps", "episode_return", "final_regret", "budget"])
        writer.writerows(log.rows)
    _plot(log.rows, out.with_suffix(".png"), f"PPO meta-training on SyntheticTask ({space}, d={meta['d']})")
    return meta


def _plot(rows: list[tuple[int, float, float, int]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array(rows, dtype=float)
    window = max(1, len(data) // 20)
    smooth = np.convolve(data[:, 2], np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(data[:, 0], data[:, 2], ".", alpha=0.2, label="episode")
    ax.plot(data[window - 1:, 0], smooth, label=f"mean of {window}")
    ax.set_xlabel("training timesteps (synthetic evaluations)")
    ax.set_ylabel("final normalised regret")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="joint", choices=["core", "specialists", "joint"])
    parser.add_argument("--steps", type=int, default=60_000, help="PPO timesteps (one synthetic evaluation each)")
    parser.add_argument("--out", type=Path, default=None, help="default policies/pretrained/ppo_<space>.zip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-low", type=int, default=20)
    parser.add_argument("--budget-high", type=int, default=100)
    parser.add_argument("--init", type=Path, default=None, help="continue training this saved policy")
    parser.add_argument("--reward", default="improvement", choices=["regret", "improvement"],
                        help="minus the normalised regret per step, or its decrease")
    args = parser.parse_args(argv)
    out = args.out or Path(__file__).parent / "pretrained" / f"ppo_{args.space}.zip"
    meta = train(args.space, args.steps, out, seed=args.seed, budget=(args.budget_low, args.budget_high),
                 reward=args.reward, init=args.init)
    print(f"{meta['timesteps']} timesteps, {meta['episodes']} episodes, {meta['train_wall_s']} s -> {out}")
    print(f"{'timesteps':>10} {'episodes':>8} {'return':>9} {'final regret':>12}")
    for row in meta["curve"]:
        print(f"{row['timesteps']:>10} {row['episodes']:>8} {row['mean_return']:>9.2f} {row['mean_final_regret']:>12.3f}")


if __name__ == "__main__":
    main()
