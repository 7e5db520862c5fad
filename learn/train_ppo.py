"""Meta-train the ``ppo`` searchers' policies on cheap tasks (no real evaluation is spent).

    python -m learn.train_ppo --space joint --steps 60000 --out runs/out/ppo_joint_synthetic.zip [--seed 0]
        [--reward improvement|regret] [--init PREVIOUS.zip]  # --init: continue training a saved policy
        [--checkpoint-every 10000] [--restart]               # crash safety, see below
    python -m learn.train_ppo --tasks emulated --split binance-to-bybit --design edit|candidates \
        --steps 1000000 --out policies/pretrained/ppo_edit_binance.zip [--n-envs 2 --vec subproc]
    python -m learn.train_ppo --describe [--json]         # the committed policies: design, steps, splits

``--tasks emulated``: each episode is one search on an emulated instance (``surrogate.emulator``)
of the split's *training* instances (:data:`SPLITS`), randomised per episode by
``surrogate.emulator.EpisodeSampler`` (score scale and shift, emulator noise; the edit design
also permutes the axes). The *validation* instances choose the acting mode (greedy or sampled,
recorded as ``acting`` in the ``.json``); the *test* instances are used by nothing here
(``learn.ablation`` reports on them). ``--design edit`` trains in
:class:`~env.gym_env.GemSearchEnv` (edit one axis, or ask the surrogate for free: planning),
``--design candidates`` in :class:`~env.gym_env.CandidateSearchEnv` (the default, and the only
design of ``--tasks synthetic``).

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

Crash safety: every ``--checkpoint-every`` timesteps (at the end of a PPO update) and at the
end, ``<out>.checkpoint`` is replaced atomically by one file holding the SB3 model (weights
and optimizer state), the timesteps done, the episode log so far, the wall time so far and
the run's settings. Running the same command again after a crash (``kill -9``, power loss)
resumes from it and trains only the remaining timesteps; different settings are refused
(``--restart`` discards the checkpoint and starts over). The outputs are written atomically
too, and the checkpoint is removed once they are all in place.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv
from threadpoolctl import threadpool_limits

from env.gym_env import N_INIT, CandidateSearchEnv, GemSearchEnv
from policies.ppo import PRETRAINED

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
ROLLOUT = N_ENVS * PPO_SETTINGS["n_steps"]
"""Transitions per PPO update: training stops at the first whole update that reaches the requested timesteps."""

CHECKPOINT_EVERY = 10_000
PLANNING = 3
"""Edit design: free surrogate queries allowed per real evaluation."""
EXPLORE = True
"""Edit design: the fresh-point action (``GemSearchEnv(explore=True)``: the next point of a Sobol sequence)."""
RANDOMISATION = {"scale": (0.5, 2.0), "shift": (-0.1, 0.1), "noise": (0.0, 0.1)}
"""Per-episode randomisation of emulated instances (``EpisodeSampler``): log-uniform score scale, uniform
shift (score units), Gaussian noise as a share of the instance's finite-score std."""
SPLITS = ("binance-to-bybit", "bybit-to-binance", "synthetic-v1")
"""Named splits of emulated instances into training, validation and test tasks (:func:`split_tasks`)."""
VALIDATION_BUDGET = 50
CHECKPOINT_FORMAT = 1
OUTPUT_SUFFIXES = (".zip", ".json", ".csv", ".png")

Row = tuple[int, float, float, int]

_UMASK = os.umask(0o022)
os.umask(_UMASK)


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: unreadable, or written by a run with other settings."""


def checkpoint_path(out: Path) -> Path:
    """Where the training run writing ``out`` keeps its checkpoint (``ppo_edit_binance.zip`` -> ``ppo_edit_binance.checkpoint``)."""
    return Path(out).with_suffix(".checkpoint")


def split_tasks(split: str) -> dict[str, Any]:
    """The suite and the training / validation / test instance ids of a named split.

    * ``binance-to-bybit``: train on the Binance spot instances of ``real-v1`` but the two latest-starting
      (validation); test on every Bybit instance.
    * ``bybit-to-binance``: train on the Bybit instances but the latest-starting of each family
      (``bybit-perp-*``, ``bybit-perp-liq30-*``: validation); test on every Binance instance.
    * ``synthetic-v1``: train on ``synthetic-v1-01..06``, validate on ``-07``, test on ``-08`` (small; tests).
    """
    from instances import load_suite

    if split == "synthetic-v1":
        ids = load_suite("synthetic-v1").ids
        return {"suite": "synthetic-v1", "training_tasks": ids[:-2], "validation_tasks": ids[-2:-1], "test_tasks": ids[-1:]}
    ids = load_suite("real-v1").ids  # ids end in the first month of the search window: sorted = by start
    binance = sorted(i for i in ids if i.startswith("binance-spot-"))
    bybit = sorted(i for i in ids if i.startswith("bybit-perp-"))
    if split == "binance-to-bybit":
        return {"suite": "real-v1", "training_tasks": binance[:-2], "validation_tasks": binance[-2:], "test_tasks": bybit}
    if split == "bybit-to-binance":
        latest = [sorted(i for i in bybit if ("liq30" in i) == liq)[-1] for liq in (False, True)]
        return {"suite": "real-v1", "training_tasks": [i for i in bybit if i not in latest], "validation_tasks": latest,
                "test_tasks": binance}
    raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


def load_tasks(split: str, which: str, emulators: Path | None = None) -> list:
    """The emulated problems (``surrogate.emulator.EmulatedProblem``) of one part of a split (``training_tasks``, ...),
    from the committed emulators (``surrogate/emulators``) or those in the folder ``emulators``."""
    from surrogate.emulator import emulator_path, suite_problems

    tasks = split_tasks(split)
    path = emulator_path(tasks["suite"], folder=emulators) if emulators is not None else None
    return suite_problems(tasks["suite"], path=path, instances=tasks[which])


def make_env(design: str, space: str, budget: tuple[int, int], reward: str, split: str | None = None,
             problems: list | None = None, randomisation: dict | None = None, planning: int = PLANNING,
             seed: int = 0, emulators: Path | None = None, query_cost: float = 0.0):
    """One training env: synthetic tasks (``split=None``, candidates only) or the split's emulated training instances."""
    if split is None:
        if design != "candidates":
            raise ValueError("--design edit trains on emulated instances only (--tasks emulated)")
        return CandidateSearchEnv(space, budget=budget, reward=reward)
    from surrogate.emulator import EpisodeSampler

    problems = problems if problems is not None else load_tasks(split, "training_tasks", emulators)
    sampler = EpisodeSampler(problems, budget=budget, seed=seed, **(randomisation or {}))
    if design == "candidates":
        return CandidateSearchEnv(sampler.space, objective_factory=sampler, reward=reward)
    return GemSearchEnv(budget=budget[1], objective_factory=sampler, planning=planning, reward="improvement",
                        permute_axes=True, explore=EXPLORE, query_cost=query_cost)


def run_settings(space: str, steps: int, seed: int, budget: tuple[int, int], reward: str,
                 init: Path | None, *, split: str | None = None, design: str = "candidates", n_envs: int = N_ENVS,
                 planning: int = PLANNING, randomisation: dict | None = None, query_cost: float = 0.0) -> dict[str, Any]:
    """What a checkpoint must match to be resumed (the checkpoint interval may change between attempts)."""
    settings = {"space": space, "steps": int(steps), "seed": int(seed), "budget_range": [int(budget[0]), int(budget[1])],
                "reward": reward, "init": str(init) if init is not None else None, "n_envs": int(n_envs),
                "ppo": {k: v for k, v in PPO_SETTINGS.items() if k != "policy_kwargs"} | {"net_arch": [64, 64]}}
    if split is not None:  # emulated tasks (synthetic runs keep their original settings)
        settings |= {"split": split, "design": design,
                     "randomisation": {k: list(v) for k, v in (randomisation or {}).items() if v is not None}}
        if design == "edit":
            settings |= {"planning": int(planning), "explore": EXPLORE}
            if query_cost:  # absent when 0, so runs from before the option resume as they were
                settings["query_cost"] = float(query_cost)
    return settings


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all or nothing: a temporary file in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp's 0600 would make the outputs private
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _remove_stale_temporaries(out: Path) -> None:
    """Temporary files a killed run left behind (hidden, ``.<name>.<random>.tmp``) for this run's files."""
    for suffix in (*OUTPUT_SUFFIXES, ".checkpoint"):
        for stale in out.parent.glob(f".{out.with_suffix(suffix).name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()


def save_checkpoint(path: Path, model: PPO, state: dict[str, Any]) -> None:
    """One zip file: ``state.json`` (settings, timesteps, episode rows, wall time) and ``model.zip`` (SB3)."""
    model_bytes = io.BytesIO()
    model.save(model_bytes)
    blob = io.BytesIO()
    with zipfile.ZipFile(blob, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("state.json", json.dumps({"format": CHECKPOINT_FORMAT} | state))
        archive.writestr("model.zip", model_bytes.getvalue())
    atomic_write(path, blob.getvalue())


def load_checkpoint(path: Path) -> tuple[dict[str, Any], bytes]:
    """The checkpoint's state and SB3 model bytes; :class:`CheckpointError` if it cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            state = json.loads(archive.read("state.json"))
            model_bytes = archive.read("model.zip")  # the zip's CRC check catches corrupted bytes
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"format {state.get('format')!r}, this version reads {CHECKPOINT_FORMAT}")
        for key in ("settings", "timesteps", "target_timesteps", "rows", "train_wall_s", "resumed_from"):
            if key not in state:
                raise KeyError(key)
    except Exception as error:  # BadZipFile, KeyError, JSONDecodeError, OSError, ...: all mean "cannot resume"
        raise CheckpointError(
            f"{path} is not a readable training checkpoint ({type(error).__name__}: {error}); "
            f"pass --restart to discard it and train from scratch") from error
    return state, model_bytes


def _check_settings(path: Path, saved: dict[str, Any], wanted: dict[str, Any], done: int) -> None:
    differences = [f"{key}={saved.get(key)!r} there, {wanted[key]!r} here"
                   for key in wanted if saved.get(key) != wanted[key]]
    if differences:
        raise CheckpointError(
            f"{path} holds an interrupted run ({done} of {saved.get('steps')} timesteps done) with other settings: "
            f"{'; '.join(differences)}. Re-run with that run's settings to continue it, pass --restart to discard it, "
            f"or choose another --out")


class EpisodeLog(BaseCallback):
    """Collects ``(timestep, return, final regret, budget)`` of every finished training episode.

    ``timestep`` is the number of the episode's last transition counted over all envs (env ``i``'s
    transition in a vectorised step is ``num_timesteps - N_ENVS + i + 1``), so it is unique and the
    rows are strictly increasing even when several envs finish in the same step.
    """

    def __init__(self, rows: list[Row] | None = None, n_envs: int = N_ENVS) -> None:
        super().__init__()
        self.rows: list[Row] = list(rows or [])
        self.n_envs = n_envs
        self.returns = np.zeros(n_envs)

    def _on_step(self) -> bool:
        self.returns += self.locals["rewards"]
        for i, done in enumerate(self.locals["dones"]):
            if done:
                info = self.locals["infos"][i]
                self.rows.append((self.num_timesteps - self.n_envs + i + 1, float(self.returns[i]), float(info["regret"]),
                                  int(info["real_evaluations"])))
                self.returns[i] = 0.0
        return True


class Checkpointer(BaseCallback):
    """Saves a checkpoint after every PPO update that completes ``every`` timesteps since the last one, and at the end.

    Updates are the only consistent points: the rollout buffer is not saved, so a checkpoint
    taken inside a rollout would count transitions the policy never learned from.
    """

    def __init__(self, path: Path, every: int, state: Callable[[], dict[str, Any]], last: int) -> None:
        super().__init__()
        self.path, self.every, self.state, self.last = path, every, state, last

    def _save(self) -> None:
        save_checkpoint(self.path, self.model, self.state())
        self.last = self.num_timesteps
        print(f"checkpoint: {self.num_timesteps} timesteps -> {self.path}", flush=True)

    def _on_rollout_start(self) -> None:  # i.e. after the previous update's train()
        if self.num_timesteps - self.last >= self.every:
            self._save()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        if self.num_timesteps != self.last:
            self._save()


def curve_table(rows: list[Row], blocks: int = 10) -> list[dict[str, float]]:
    """The episode log in ``blocks`` consecutive groups: mean return and mean final regret per group."""
    table = []
    for chunk in np.array_split(np.array(rows, dtype=float), min(blocks, len(rows))):
        table.append({"timesteps": int(chunk[-1, 0]), "episodes": len(chunk),
                      "mean_return": float(chunk[:, 1].mean()), "mean_final_regret": float(chunk[:, 2].mean())})
    return table


def train(space: str, steps: int, out: Path, seed: int = 0, budget: tuple[int, int] = (20, 100),
          reward: str = "improvement", init: Path | None = None, checkpoint_every: int = CHECKPOINT_EVERY,
          restart: bool = False, *, split: str | None = None, design: str = "candidates", n_envs: int = N_ENVS,
          vec: str = "dummy", planning: int = PLANNING, randomisation: dict | None = None,
          validation_seeds: int = 3, emulators: Path | None = None, query_cost: float = 0.0) -> dict:
    """Train (from scratch, or on from the policy ``init``), save ``out`` (+ ``.json``, ``.csv``, ``.png``), return the metadata.

    Continuing from ``init`` adds its recorded timesteps and wall time to the totals saved. Training stops at
    the first whole PPO update (``n_envs x n_steps`` transitions) that reaches ``steps`` more timesteps.

    ``split=None``: synthetic tasks (candidate design); else the split's emulated training instances with
    ``randomisation`` (default :data:`RANDOMISATION`), then the acting mode chosen on its validation instances
    (``validation_seeds`` seeds each, budget :data:`VALIDATION_BUDGET`; 0 skips it).

    If ``<out>.checkpoint`` exists (an interrupted run) it is resumed: same settings required, else
    :class:`CheckpointError`; ``restart=True`` discards it instead. ``checkpoint_every <= 0``: no checkpoints.
    """
    out = Path(out)
    if not out.suffix:  # as SB3's save would name it
        out = out.with_suffix(".zip")
    if not budget[0] > N_INIT or budget[1] < budget[0]:
        raise ValueError(f"budget range {budget}: need {N_INIT} < low <= high (the first {N_INIT} evaluations "
                         f"are the initial design)")
    if split is not None:
        split_tasks(split)  # an unknown split fails before anything is written
        randomisation = dict(RANDOMISATION if randomisation is None else randomisation)
    ckpt = checkpoint_path(out)
    if query_cost and design != "edit":
        raise ValueError("query_cost charges the edit design's surrogate queries: use it with design='edit'")
    settings = run_settings(space, steps, seed, budget, reward, init, split=split, design=design, n_envs=n_envs,
                            planning=planning, randomisation=randomisation, query_cost=query_cost)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(out)
    if restart and ckpt.exists():
        print(f"--restart: discarding {ckpt}", flush=True)
        ckpt.unlink()
    checkpoint = None
    if ckpt.exists():
        checkpoint, model_bytes = load_checkpoint(ckpt)
        _check_settings(ckpt, checkpoint["settings"], settings, checkpoint["timesteps"])

    torch.set_num_threads(1)
    began = time.perf_counter()
    with threadpool_limits(limits=1):  # tiny matrices: BLAS threads only cost time on a shared machine
        def factory(i: int) -> Callable[[], Any]:
            def build() -> Any:
                env = make_env(design, space, budget, reward, split, randomisation=randomisation,
                               planning=planning, seed=seed + i, emulators=emulators, query_cost=query_cost)
                # kept for the process (SubprocVecEnv workers start without the limit); after make_env, which loads
                # LightGBM's OpenMP: threadpoolctl limits only the libraries already loaded
                threadpool_limits(limits=1)
                return env
            return build

        venv = (SubprocVecEnv if vec == "subproc" else DummyVecEnv)([factory(i) for i in range(n_envs)])
        venv.seed(seed)
        if checkpoint is not None:
            done = int(checkpoint["timesteps"])
            try:  # envs restart with fresh episodes, seeded apart from the ones already trained on
                model = PPO.load(io.BytesIO(model_bytes), env=venv, device="cpu", seed=seed + done)
            except Exception as error:
                raise CheckpointError(f"{ckpt}: the saved model does not load ({type(error).__name__}: {error}); "
                                      f"pass --restart to discard it and train from scratch") from error
            if model.num_timesteps != done:
                raise CheckpointError(f"{ckpt}: the model has {model.num_timesteps} timesteps, the state {done}; "
                                      f"pass --restart to discard it")
            before = checkpoint["train_wall_s"]
            target = int(checkpoint["target_timesteps"])
            rows = [tuple(r) for r in checkpoint["rows"]]
            resumed_from = list(checkpoint["resumed_from"]) + [done]
            print(f"resuming {ckpt}: {done} of {target} timesteps done, {len(rows)} episodes logged", flush=True)
        else:
            resumed_from = []
            if init is None:
                model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **PPO_SETTINGS)
                before, rows = 0.0, []
            else:
                model = PPO.load(init, env=venv, device="cpu", seed=seed)
                before = json.loads(Path(init).with_suffix(".json").read_text())["train_wall_s"]
                with Path(init).with_suffix(".csv").open(newline="") as handle:  # the earlier episodes, for the curve
                    rows = [(int(r[0]), float(r[1]), float(r[2]), int(r[3])) for r in list(csv.reader(handle))[1:]]
            target = int(model.num_timesteps) + int(steps)
        log = EpisodeLog(rows, n_envs)

        def state() -> dict[str, Any]:
            return {"settings": settings, "timesteps": int(model.num_timesteps), "target_timesteps": target,
                    "rows": log.rows, "train_wall_s": round(before + time.perf_counter() - began, 3),
                    "resumed_from": resumed_from}

        callbacks = [log]
        if checkpoint_every > 0:
            callbacks.append(Checkpointer(ckpt, checkpoint_every, state, last=int(model.num_timesteps)))
        remaining = target - int(model.num_timesteps)
        if remaining > 0:  # else: a run killed after its last checkpoint, before its outputs were all written
            model.learn(total_timesteps=remaining, callback=CallbackList(callbacks), reset_num_timesteps=False)
        d = venv.get_attr("d", [0])[0]
        venv.close()
    wall = before + time.perf_counter() - began
    table = curve_table(log.rows)
    meta = {
        "space": space, "d": d, "timesteps": int(model.num_timesteps), "episodes": len(log.rows),
        "train_wall_s": round(wall, 1), "seed": seed, "continued_from": str(init) if init else None,
        "requested_timesteps": target, "resumed_from": resumed_from,
        "budget_range": list(budget), "reward": reward, "n_envs": n_envs, "vec_env": vec,
        "ppo": settings["ppo"], "stable_baselines3": stable_baselines3.__version__, "curve": table,
    }
    if split is None:
        meta |= {"action_design": "candidates", "tasks": "synthetic", "task_seeds": [1_000_000, 2**31 - 1]}
    else:
        tasks = split_tasks(split)
        meta |= {"action_design": design, "tasks": "emulated", "split": split, "suite": tasks["suite"],
                 "training_tasks": tasks["training_tasks"], "validation_tasks": tasks["validation_tasks"],
                 "test_tasks": tasks["test_tasks"], "randomisation": settings["randomisation"]}
        if design == "edit":
            meta |= {"planning": planning, "n_bins": 11, "permute_axes": True, "explore": EXPLORE,
                     "query_cost": float(query_cost)}
        if validation_seeds > 0:  # the only choice made after training, on the validation instances
            from learn.ablation import validation_scores

            scores = validation_scores(model, meta, load_tasks(split, "validation_tasks", emulators), VALIDATION_BUDGET,
                                       validation_seeds)
            meta["validation"] = {"budget": VALIDATION_BUDGET, "seeds": validation_seeds,
                                  "mean_normalised_best": scores}
            meta["acting"] = max(scores, key=lambda mode: (scores[mode], mode == "sampled"))
    # every output all or nothing; the policy last, the checkpoint removed only once all are in place
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["timesteps", "episode_return", "final_regret", "budget"])
    writer.writerows(log.rows)
    atomic_write(out.with_suffix(".csv"), text.getvalue().encode())
    title = (f"PPO meta-training on SyntheticTask ({space}, d={meta['d']})" if split is None
             else f"PPO ({design}) on emulated {split} training instances (d={meta['d']})")
    atomic_write(out.with_suffix(".png"), _plot(log.rows, title))
    atomic_write(out.with_suffix(".json"), (json.dumps(meta, indent=1) + "\n").encode())
    policy = io.BytesIO()
    model.save(policy)
    atomic_write(out, policy.getvalue())
    if ckpt.exists():
        ckpt.unlink()
    return meta


def describe(folder: Path | None = None) -> list[dict[str, Any]]:
    """Per committed policy (``policies/pretrained/*.json``): name, action design, timesteps and its task split.

    Policies trained before the emulated splits (``tasks`` absent: synthetic meta-training) are reported with
    what is known: training on ``SyntheticTask`` seeds, no validation split (their held-out synthetic seeds
    0..15 also chose the reward, checkpoint and acting mode, so they are validation, not test, tasks).
    """
    folder = Path(folder) if folder is not None else PRETRAINED
    rows = []
    for path in sorted(folder.glob("*.json")):
        meta = json.loads(path.read_text())
        if "timesteps" not in meta:
            continue
        row = {"name": path.stem, "action_design": meta.get("action_design", "candidates"),
               "timesteps": int(meta["timesteps"]), "space": meta.get("space"), "tasks": meta.get("tasks", "synthetic"),
               "split": meta.get("split"), "train_wall_s": meta.get("train_wall_s"), "acting": meta.get("acting", "sampled")}
        if meta.get("tasks") == "emulated":
            row |= {k: meta[k] for k in ("training_tasks", "validation_tasks", "test_tasks")}
        else:
            seeds = meta.get("task_seeds", [1_000_000, 2**31 - 1])
            row |= {"training_tasks": [f"SyntheticTask({meta.get('space')}) seeds {seeds[0]}..{seeds[1] - 1}"],
                    "validation_tasks": [],
                    "test_tasks": [f"SyntheticTask({meta.get('space')}) seeds 0..15 (also used for choices: "
                                   f"validation in effect)"]}
        rows.append(row)
    return rows


def _plot(rows: list[Row], title: str) -> bytes:
    """The training curve as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.array(rows, dtype=float)
    window = max(1, len(data) // 20)
    smooth = np.convolve(data[:, 2], np.ones(window) / window, mode="valid")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(data[:, 0], data[:, 2], ".", alpha=0.2, label="episode")
    ax.plot(data[window - 1:, 0], smooth, label=f"mean of {window}")
    ax.set_xlabel("training timesteps")
    ax.set_ylabel("final normalised regret")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--space", default="joint", choices=["core", "specialists", "joint"])
    parser.add_argument("--steps", type=int, default=60_000,
                        help=f"PPO timesteps (one synthetic evaluation each), rounded up to whole updates of {ROLLOUT}")
    parser.add_argument("--out", type=Path, default=None, help="default policies/pretrained/ppo_<design>_<first venue of the split>.zip "
                        "(emulated tasks) or ppo_<space>_synthetic.zip (synthetic tasks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-low", type=int, default=20)
    parser.add_argument("--budget-high", type=int, default=100)
    parser.add_argument("--init", type=Path, default=None, help="continue training this saved policy")
    parser.add_argument("--reward", default="improvement", choices=["regret", "improvement"],
                        help="minus the normalised regret per step, or its decrease")
    parser.add_argument("--checkpoint-every", type=int, default=CHECKPOINT_EVERY,
                        help="timesteps between checkpoints (<out>.checkpoint; 0: none); "
                             "re-running the same command resumes an interrupted run from it")
    parser.add_argument("--restart", action="store_true",
                        help="discard an interrupted run's checkpoint and train from scratch")
    parser.add_argument("--tasks", default="synthetic", choices=["synthetic", "emulated"],
                        help="training tasks: SyntheticTask draws, or the --split's emulated training instances")
    parser.add_argument("--split", default="binance-to-bybit", choices=list(SPLITS),
                        help="with --tasks emulated: training / validation / test instances (see split_tasks)")
    parser.add_argument("--design", default="candidates", choices=["candidates", "edit"],
                        help="action design: choose among GP candidates, or edit the joint space (with planning)")
    parser.add_argument("--planning", type=int, default=PLANNING,
                        help="edit design: free surrogate queries allowed per real evaluation")
    parser.add_argument("--query-cost", type=float, default=0.0,
                        help="edit design: reward of each free surrogate query is minus this (default 0: free)")
    parser.add_argument("--n-envs", type=int, default=N_ENVS, help="vectorised environments")
    parser.add_argument("--vec", default="dummy", choices=["dummy", "subproc"],
                        help="DummyVecEnv (one process) or SubprocVecEnv (one process per env)")
    parser.add_argument("--noise", type=float, nargs=2, default=RANDOMISATION["noise"], metavar=("LOW", "HIGH"),
                        help="emulated tasks: per-episode noise, share of the instance's score std")
    parser.add_argument("--validation-seeds", type=int, default=3,
                        help="emulated tasks: seeds per validation instance to choose greedy vs sampled (0: skip)")
    parser.add_argument("--emulators", type=Path, default=None,
                        help="folder of the emulator containers (default: the committed surrogate/emulators)")
    parser.add_argument("--describe", action="store_true", help="describe the committed policies and exit")
    parser.add_argument("--json", action="store_true", help="with --describe: strict JSON")
    args = parser.parse_args(argv)
    if args.describe:
        rows = describe()
        if args.json:
            print(json.dumps(rows, indent=1))
        else:
            for row in rows:
                print(f"{row['name']}: {row['action_design']}, {row['timesteps']:,} timesteps on {row['tasks']} tasks"
                      f"{' (' + row['split'] + ')' if row['split'] else ''}; train {', '.join(row['training_tasks'])}; "
                      f"validation {', '.join(row['validation_tasks']) or '-'}; test {', '.join(row['test_tasks'])}")
        return
    if args.tasks == "synthetic" and args.design != "candidates":
        parser.error("--design edit needs --tasks emulated")
    if not args.budget_high >= args.budget_low > N_INIT:
        parser.error(f"need {N_INIT} < --budget-low <= --budget-high "
                     f"(the first {N_INIT} evaluations are the initial design)")
    emulated = args.tasks == "emulated"
    default_name = f"ppo_{args.space}_synthetic.zip" if not emulated else f"ppo_{args.design}_{args.split.split('-')[0]}.zip"
    out = args.out or PRETRAINED / default_name
    randomisation = RANDOMISATION | {"noise": tuple(args.noise)}
    try:
        meta = train(args.space, args.steps, out, seed=args.seed, budget=(args.budget_low, args.budget_high),
                     reward=args.reward, init=args.init, checkpoint_every=args.checkpoint_every, restart=args.restart,
                     split=args.split if emulated else None, design=args.design, n_envs=args.n_envs, vec=args.vec,
                     planning=args.planning, randomisation=randomisation if emulated else None,
                     validation_seeds=args.validation_seeds, emulators=args.emulators, query_cost=args.query_cost)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        ckpt = checkpoint_path(out if out.suffix else out.with_suffix(".zip"))
        print(f"\ninterrupted: " + (f"re-run the same command to resume from {ckpt}" if ckpt.exists()
                                    else "no checkpoint was written yet"), file=sys.stderr)
        raise SystemExit(130) from None
    print(f"{meta['timesteps']} timesteps, {meta['episodes']} episodes, {meta['train_wall_s']} s -> {out}")
    if "validation" in meta:
        print(f"validation ({', '.join(meta['validation_tasks'])}): {meta['validation']['mean_normalised_best']}"
              f" -> acting {meta['acting']}")
    print(f"{'timesteps':>10} {'episodes':>8} {'return':>9} {'final regret':>12}")
    for row in meta["curve"]:
        print(f"{row['timesteps']:>10} {row['episodes']:>8} {row['mean_return']:>9.2f} {row['mean_final_regret']:>12.3f}")


if __name__ == "__main__":
    main()
