"""The emulator of one instance: a LightGBM regression of the finite score and a LightGBM feasibility classifier.

Both are fitted on the space's unit encoding (``SearchSpace.encode``) of the instance's dataset rows: the
regressor on the rows with a finite score, the classifier (``P(feasible)``) on all of them. The emulated score
of a configuration is ``-inf`` where ``P(feasible) < threshold``, else the regression's prediction; the threshold
is calibrated on the held-out rows so that the emulator rejects the share of them the harness rejects
(:func:`calibrated_threshold`). Fitting is deterministic (one thread,
``deterministic=True``, fixed seeds): the same rows give the same model text, byte for byte.

Why LightGBM: it handles the cliffs, switches, missing (switched-off) axes and ordinal choices of the joint
space without a kernel, and fits and predicts fast (``docs/PERFORMANCE.md``); the other candidate families are
compared on the same held-out rows by ``python -m runs.emulator families`` (``docs/RESULTS.md``).

Fidelity is measured at fit time: a seeded random 20% of the instance's rows is held out, models fitted on the
other 80% are scored on it (Spearman of predicted vs real finite scores, feasibility ROC-AUC, recall of the real
top decile, the rejected shares), then the shipped models are refitted on every row.

The container (``<suite>.emulator``) is a zip written with fixed timestamps: ``manifest.json`` (format, contract,
suite, space, dataset hash, instance ids) and per instance ``<id>.json`` (metadata: definition, instance
fingerprint, axes, rows hash, hyperparameters, threshold, fidelity, model hashes) plus the two LightGBM models as
text. Loading checks format, contract, instance definition, space, data fingerprint and model hashes, and refuses
a mismatch with a one-line :class:`EmulatorError` naming the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import norm, rankdata, spearmanr
from sklearn.metrics import roc_auc_score

from data import DataError
from harness.integrity import contract_id
from instances import Instance, InstanceError
from strategy.space import SearchSpace
from surrogate.emulator.dataset import EmulatorError, encode_rows, file_sha256, rows_sha256

FORMAT = "gemsearch-emulator"
FORMAT_VERSION = 2
"""2: the models read :func:`features` of the encoding (1 read the encoding itself)."""
THRESHOLD = 0.5
HOLDOUT_SHARE = 0.2
MIN_FEASIBLE = 5
"""Fewer finite scores than this: no regression (the finite rows' median is predicted)."""

COMMON = {"deterministic": True, "num_threads": 1, "force_col_wise": True, "verbosity": -1, "seed": 17,
          "bagging_seed": 17, "feature_fraction_seed": 17, "data_random_seed": 17, "min_data_in_bin": 1,
          "max_bin": 63}
TREES = {"learning_rate": 0.08, "num_leaves": 7, "min_data_in_leaf": 5, "feature_fraction": 0.8,
         "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0, "extra_trees": True, "rounds": 80}
REGRESSOR = {"objective": "regression", **TREES}
CLASSIFIER = {"objective": "binary", **TREES}
"""Hyperparameters (``rounds``: boosting rounds), chosen by 5-fold cross-validation on datasets of real evaluations
over a grid of leaves, minimum leaf sizes, rounds, learning rates, feature fractions and extremely randomised
splits (the measurement: ``docs/log/2026-11-emulator-log.md``)."""
QUANTILES = 257
"""Knots of the finite scores' empirical quantile function kept to map predictions back to scores."""


SPECIALISTS = ("bull", "bear", "ranging")
GATED = {"switches.use_hmm": ("hmm.hmm_refit_interval", "hmm.hmm_min_observations", "hmm.detector"),
         "switches.risk_off_gate": ("switches.risk_off_ma_days", "switches.risk_off_action")}
"""Axes that do nothing while their switch is off (besides each specialist's axes under ``use_<specialist>``)."""


def features(axes: Sequence[str]) -> Callable[[np.ndarray], np.ndarray]:
    """The models' inputs from ``(n, d)`` unit encodings over ``axes``: the encoding with every axis that does
    nothing (a disabled specialist's, the detector's with ``use_hmm`` off, the gate's with it off) set to NaN,
    which LightGBM sends down its own branch, then the number of enabled specialists and, per specialist axis
    (``top_n``, ...), its mean over the enabled specialists (the regime mixture blends them).

    Chosen over the plain encoding by 5-fold cross-validation (``docs/log/2026-11-emulator-log.md``). Spaces without
    switches: the plain encoding."""
    at = {name: j for j, name in enumerate(axes)}
    gated = {at[s]: [at[a] for a in dependent if a in at] for s, dependent in GATED.items() if s in at}
    for name in SPECIALISTS:
        if f"switches.use_{name}" in at:
            gated[at[f"switches.use_{name}"]] = [j for a, j in at.items() if a.startswith(name + ".")]
    if not gated:
        return lambda x: x
    switches = [at[f"switches.use_{n}"] for n in SPECIALISTS if f"switches.use_{n}" in at]
    shared = sorted({a.split(".", 1)[1] for a in axes if a.split(".", 1)[0] in SPECIALISTS})
    # per shared axis, its columns in the specialists (len(axes): an all-NaN column where a specialist lacks it)
    groups = np.array([[at.get(f"{n}.{p}", len(axes)) for n in SPECIALISTS] for p in shared], dtype=int).reshape(-1, 3)

    def derive(x: np.ndarray) -> np.ndarray:
        masked = np.empty((len(x), len(axes) + 1))
        masked[:, :-1], masked[:, -1] = x, np.nan
        for switch, dependent in gated.items():
            masked[:, dependent] = np.where(x[:, switch, None] < 0.5, np.nan, x[:, dependent])
        values = masked[:, groups]
        count = np.sum(~np.isnan(values), axis=2)
        means = np.where(count > 0, np.nansum(values, axis=2) / np.maximum(count, 1), np.nan)
        return np.column_stack([masked[:, :-1], x[:, switches].sum(axis=1), means])
    return derive


def train(x: np.ndarray, y: np.ndarray, settings: Mapping[str, Any]) -> lgb.Booster:
    """One deterministic LightGBM model on ``(n, d)`` unit points."""
    params = {**COMMON, **{k: v for k, v in settings.items() if k != "rounds"}}
    data = lgb.Dataset(x, label=y, params={k: COMMON[k] for k in ("min_data_in_bin", "max_bin", "verbosity")},
                       free_raw_data=True)
    return lgb.train(params, data, num_boost_round=int(settings["rounds"]))


def gaussianised(y: np.ndarray) -> np.ndarray:
    """Normal scores of ``y``'s ranks (ties share their average rank): the regression target."""
    return norm.ppf((rankdata(y) - 0.5) / len(y))


@dataclass
class Models:
    """The fitted pair (either may be absent: too few finite scores, or one class only), on :func:`features`.

    The regression is fitted on the normal scores of the finite scores' ranks and mapped back through their
    empirical quantile function (``quantiles``): robust to the few extreme scores of a short window, the
    ranking is what it learns, and emulated scores keep the real ones' range, plateaus included (every
    all-specialists-off configuration scores exactly 0: they stay tied).
    """

    axes: tuple[str, ...]
    regressor: lgb.Booster | None
    classifier: lgb.Booster | None
    constant_score: float
    """Predicted score without a regressor (median of the finite scores; 0 with none)."""
    p_constant: float
    """``P(feasible)`` without a classifier (the one class seen: 1 or 0)."""
    quantiles: list[float] = field(default_factory=list)
    """The finite training scores at ``QUANTILES`` evenly spaced probabilities."""

    def __post_init__(self) -> None:
        self.derive = features(self.axes)

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, axes: Sequence[str], regressor: Mapping[str, Any] = REGRESSOR,
            classifier: Mapping[str, Any] = CLASSIFIER) -> "Models":
        """Fit on ``(n, d)`` unit encodings over ``axes`` and scores ``y`` (``-inf``: rejected)."""
        finite = np.isfinite(y)
        z = features(axes)(x)
        reg = train(z[finite], gaussianised(y[finite]), regressor) if finite.sum() >= MIN_FEASIBLE else None
        both = 0 < finite.sum() < finite.size
        clf = train(z, finite.astype(float), classifier) if both else None
        knots = np.quantile(y[finite], np.linspace(0.0, 1.0, QUANTILES)).tolist() if finite.any() else []
        return cls(tuple(axes), reg, clf, float(np.median(y[finite])) if finite.any() else 0.0,
                   1.0 if finite.all() else 0.0, knots)

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(predicted finite score, P(feasible))`` at ``(n, d)`` unit points."""
        z = self.derive(x)
        if self.regressor is None:
            mean = np.full(len(x), self.constant_score)
        else:
            u = norm.cdf(self.regressor.predict(z, num_threads=1))
            mean = np.interp(u, np.linspace(0.0, 1.0, len(self.quantiles)), self.quantiles)
        p = self.classifier.predict(z, num_threads=1) if self.classifier is not None else np.full(len(x), self.p_constant)
        return mean, p


def calibrated_threshold(p: np.ndarray, rejected_share: float | None) -> float:
    """The cut on ``P(feasible)`` under which the held-out rows' predicted share equals their real rejected share.

    A classifier unsure of a minority class puts many of its members below 0.5: with a fixed 0.5 the emulator
    would reject more than the harness does (on the smoke data 82% instead of 61%), and with them much of the
    real top decile. Matching the share on held-out rows keeps the rejected region the size it really is.
    ``THRESHOLD`` when there is nothing to calibrate on (no held-out rows, or one class only).
    """
    if rejected_share is None or len(p) == 0 or rejected_share in (0.0, 1.0) or np.ptp(p) == 0:
        return THRESHOLD
    ordered = np.sort(p)
    k = int(round(rejected_share * len(p)))
    low, high = ordered[max(k - 1, 0)], ordered[min(k, len(p) - 1)]
    return float((low + high) / 2.0) if k > 0 else float(ordered[0])


def holdout_split(n: int, instance: str, share: float = HOLDOUT_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` row indices: a random ``share`` of the rows, seeded by the instance id (deterministic)."""
    order = np.random.default_rng(zlib.crc32(instance.encode())).permutation(n)
    cut = int(round(n * share))
    return np.sort(order[cut:]), np.sort(order[:cut])


def fidelity(y: np.ndarray, mean: np.ndarray, p_feasible: np.ndarray, threshold: float = THRESHOLD) -> dict[str, Any]:
    """Held-out fidelity of predictions against real scores ``y`` (``-inf`` = rejected).

    ``spearman``: rank correlation of the predicted and real scores on the rows with a finite real score;
    ``feasibility_auc``: ROC-AUC of ``P(feasible)`` against the real feasibility; ``top_decile_recall``: share of
    the real top decile of the rows (the best tenth, finite) that is also in the emulator's top decile (its
    emulated scores: ``-inf`` where ``P(feasible) < threshold``); the rejected shares, real and emulated.
    None where undefined (fewer than 3 finite rows, one class only).
    """
    y = np.asarray(y, dtype=float)
    finite = np.isfinite(y)
    emulated = np.where(p_feasible >= threshold, mean, -np.inf)
    out: dict[str, Any] = {"n_test": int(y.size), "n_test_feasible": int(finite.sum())}
    out["spearman"] = float(spearmanr(mean[finite], y[finite])[0]) if finite.sum() >= 3 else None
    if out["spearman"] is not None and math.isnan(out["spearman"]):
        out["spearman"] = None
    out["feasibility_auc"] = float(roc_auc_score(finite, p_feasible)) if 0 < finite.sum() < y.size else None
    k = max(1, y.size // 10)
    top_real = set(np.argsort(-np.where(finite, y, -np.inf), kind="stable")[: min(k, int(finite.sum()))])
    top_emulated = set(np.argsort(-emulated, kind="stable")[:k])
    out["top_decile_recall"] = len(top_real & top_emulated) / len(top_real) if top_real else None
    out["reject_share_real"] = float(1.0 - finite.mean()) if y.size else None
    out["reject_share_emulated"] = float(np.mean(~np.isfinite(emulated))) if y.size else None
    out["rmse"] = float(np.sqrt(np.mean((mean[finite] - y[finite]) ** 2))) if finite.any() else None
    return out


# --------------------------------------------------------------------------- one instance's emulator
@dataclass
class InstanceEmulator:
    """A fitted emulator of one instance: its models and metadata (see the module docstring)."""

    meta: dict[str, Any]
    models: Models
    source: str = field(default="", compare=False)
    """Where it was loaded from (messages)."""

    @cached_property
    def space(self) -> SearchSpace:
        return SearchSpace(self.meta["space"])

    @property
    def instance(self) -> str:
        return self.meta["instance"]

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the metadata and both model texts: what every emulated trial records (a prefix of it)."""
        return self.meta["emulator_fingerprint"]

    @property
    def threshold(self) -> float:
        return float(self.meta["hyperparameters"]["threshold"])

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, P(feasible))`` at ``(n, d)`` unit points."""
        return self.models.predict(np.atleast_2d(np.asarray(x, dtype=float)))

    def scores(self, x: np.ndarray, threshold: float | None = None) -> np.ndarray:
        """Emulated scores at ``(n, d)`` unit points (``-inf`` where predicted infeasible)."""
        mean, p = self.predict(x)
        return np.where(p >= (self.threshold if threshold is None else threshold), mean, -np.inf)

    def texts(self) -> dict[str, str]:
        return {role: model.model_to_string() for role, model in
                (("regressor", self.models.regressor), ("classifier", self.models.classifier)) if model is not None}


def _fingerprint(meta: Mapping[str, Any], texts: Mapping[str, str]) -> str:
    digest = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "emulator_fingerprint"},
                                       sort_keys=True).encode())
    for role in sorted(texts):
        digest.update(role.encode() + b"\0" + texts[role].encode() + b"\0")
    return digest.hexdigest()


def fit_instance(rows: pd.DataFrame, instance: Instance, fingerprint: str, holdout_share: float = HOLDOUT_SHARE
                 ) -> InstanceEmulator:
    """Fit ``instance``'s emulator on its dataset ``rows`` (all of one instance, fingerprint and contract)."""
    space = SearchSpace(instance.space)
    if rows.empty:
        raise EmulatorError(f"instance {instance.id!r}: no dataset rows")
    for column, wanted in (("contract", contract_id()), ("fingerprint", fingerprint)):
        found = sorted(set(rows[column]))
        if found != [wanted]:
            raise EmulatorError(f"instance {instance.id!r}: {column}: dataset rows from {found}, the current one is "
                                f"{wanted}; rebuild the data (python -m runs.emulator build)")
    x = encode_rows(rows, space)
    y = rows["score"].to_numpy(dtype=float)
    train_idx, test_idx = holdout_split(len(y), instance.id, holdout_share)
    mean_test, p_test = Models.fit(x[train_idx], y[train_idx], space.names).predict(x[test_idx])
    threshold = calibrated_threshold(p_test, float(np.mean(~np.isfinite(y[test_idx]))) if test_idx.size else None)
    measured = fidelity(y[test_idx], mean_test, p_test, threshold)
    models = Models.fit(x, y, space.names)
    finite = y[np.isfinite(y)]
    meta = {
        "instance": instance.id, "definition": instance.definition(), "fingerprint": fingerprint,
        "contract": contract_id(), "space": space.name, "axes": space.names, "rows": int(len(y)),
        "rows_feasible": int(finite.size), "rows_sha256": rows_sha256(rows, space),
        "sources": {str(k): int(v) for k, v in sorted(rows["source"].value_counts().items())},
        "hyperparameters": {"regressor": REGRESSOR, "classifier": CLASSIFIER, "common": COMMON,
                            "threshold": threshold, "holdout_share": holdout_share,
                            "features": "masked encoding, enabled specialists, specialist means (v2)"},
        "score": {"min": float(finite.min()), "max": float(finite.max()), "median": float(np.median(finite)),
                  "std": float(finite.std())} if finite.size else None,
        "constant_score": models.constant_score, "p_constant": models.p_constant, "quantiles": models.quantiles,
        "fidelity": {**measured, "n_train": int(train_idx.size)}, "lightgbm": lgb.__version__,
    }
    emulator = InstanceEmulator(meta, models)
    texts = emulator.texts()
    meta["models"] = {role: hashlib.sha256(text.encode()).hexdigest() for role, text in sorted(texts.items())}
    meta["emulator_fingerprint"] = _fingerprint(meta, texts)
    return emulator


# --------------------------------------------------------------------------- the container
def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def save(path: Path, emulators: Sequence[InstanceEmulator], suite: str, dataset_sha256: str) -> Path:
    """Write the suite's emulators into one container (atomically; same emulators give the same bytes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    spaces = sorted({e.meta["space"] for e in emulators})
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "suite": suite, "space": spaces[0] if len(spaces) == 1
                else spaces, "contract": contract_id(), "dataset_sha256": dataset_sha256,
                "instances": [e.instance for e in emulators]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_entry("manifest.json"), json.dumps(manifest, indent=1, sort_keys=True), compresslevel=9)
        for emulator in emulators:
            archive.writestr(_entry(f"{emulator.instance}.json"), json.dumps(emulator.meta, indent=1, sort_keys=True),
                             compresslevel=9)
            for role, text in sorted(emulator.texts().items()):
                archive.writestr(_entry(f"{emulator.instance}.{role}.txt"), text, compresslevel=9)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return path


class EmulatorFile:
    """A container opened for reading: the manifest, and each instance's emulator on demand (checked)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise EmulatorError(f"{self.path}: no emulator file; build it with `python -m runs.emulator build "
                                "--suite SUITE` (or pass another with --emulator)")
        self.sha256 = file_sha256(self.path)
        try:
            with zipfile.ZipFile(self.path) as archive:
                self._files = {name: archive.read(name) for name in archive.namelist()}
            self.manifest = json.loads(self._files["manifest.json"])
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, zlib.error) as exc:
            raise EmulatorError(f"{self.path}: corrupt emulator file ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
        if not isinstance(self.manifest, dict) or self.manifest.get("format") != FORMAT:
            raise EmulatorError(f"{self.path}: format: not a gemsearch emulator file")
        if self.manifest.get("format_version") != FORMAT_VERSION:
            raise EmulatorError(f"{self.path}: format_version: {self.manifest.get('format_version')!r}, this code reads "
                                f"{FORMAT_VERSION}; rebuild it with `python -m runs.emulator fit`")
        if self.manifest.get("contract") != contract_id():
            raise EmulatorError(f"{self.path}: contract: built with {self.manifest.get('contract')}, this harness is "
                                f"{contract_id()}; rebuild the data and the emulator (python -m runs.emulator build)")

    @property
    def instances(self) -> list[str]:
        return list(self.manifest.get("instances", []))

    def _meta(self, instance_id: str) -> dict[str, Any]:
        if instance_id not in self.instances:
            raise EmulatorError(f"{self.path}: instance: no emulator for {instance_id!r} (it has "
                                f"{', '.join(self.instances) or 'none'})")
        try:
            meta = json.loads(self._files[f"{instance_id}.json"])
            meta["instance"], meta["models"], meta["space"], meta["axes"]  # noqa: B018  (present)
        except (KeyError, ValueError, TypeError) as exc:
            raise EmulatorError(f"{self.path}: corrupt emulator file (instance {instance_id!r}: {exc!r})") from None
        return meta

    def load(self, instance: Instance | str, space: SearchSpace | None = None, check_data: bool = True
             ) -> InstanceEmulator:
        """The emulator of ``instance`` (an :class:`Instance`: its definition, space and, when its data can be
        read and ``check_data``, its fingerprint are checked; an id: only the file's own consistency)."""
        instance_id = instance if isinstance(instance, str) else instance.id
        meta = self._meta(instance_id)
        where = f"{self.path}: instance {instance_id!r}"
        if meta.get("contract") != contract_id():
            raise EmulatorError(f"{where}: contract: built with {meta.get('contract')}, this harness is {contract_id()}")
        if space is None and isinstance(instance, Instance):
            space = SearchSpace(instance.space)
        if space is not None and (meta["space"] != space.name or meta["axes"] != space.names):
            raise EmulatorError(f"{where}: space: built for {meta['space']!r} ({len(meta['axes'])} axes), asked for "
                                f"{space.name!r} ({len(space)} axes)")
        if isinstance(instance, Instance):
            if meta.get("definition") != instance.definition():
                stored = meta.get("definition") or {}
                fields_ = sorted(k for k in set(stored) | set(instance.definition())
                                 if stored.get(k) != instance.definition().get(k))
                raise EmulatorError(f"{where}: definition: differs in {', '.join(fields_)} (built for "
                                    f"{ {k: stored.get(k) for k in fields_} }); rebuild the emulator")
            if check_data:
                try:
                    current = instance.fingerprint
                except (InstanceError, DataError, OSError):
                    current = None  # the data is not here: the definition was checked, the candles cannot be
                if current is not None and current != meta.get("fingerprint"):
                    raise EmulatorError(f"{where}: fingerprint: built on {str(meta.get('fingerprint'))[:16]}..., the "
                                        f"instance is now {current[:16]}... (its data changed); rebuild the emulator")
        texts = {}
        for role, digest in meta["models"].items():
            text = self._files.get(f"{instance_id}.{role}.txt", b"").decode(errors="replace")
            if hashlib.sha256(text.encode()).hexdigest() != digest:
                raise EmulatorError(f"{where}: corrupt emulator file ({role} model does not match its hash)")
            texts[role] = text
        if _fingerprint(meta, texts) != meta.get("emulator_fingerprint"):
            raise EmulatorError(f"{where}: corrupt emulator file (metadata does not match its fingerprint)")
        try:
            boosters = {role: lgb.Booster(model_str=text) for role, text in texts.items()}
        except lgb.basic.LightGBMError as exc:
            raise EmulatorError(f"{where}: corrupt emulator file (LightGBM: {str(exc).splitlines()[0]})") from None
        models = Models(tuple(meta["axes"]), boosters.get("regressor"), boosters.get("classifier"), float(meta["constant_score"]),
                        float(meta["p_constant"]), [float(q) for q in meta.get("quantiles", [])])
        return InstanceEmulator(meta, models, source=str(self.path))
