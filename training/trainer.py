"""ELCRec training: center initialisation, the joint loss, validation, early stopping, checkpoints."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from elcrec.model.artifact import Store
from elcrec.model.config import ModelConfig
from elcrec.model.encoder import ELCRec
from elcrec.model.intents import IntentSpace
from elcrec.training import losses
from elcrec.training.augment import augment_batch
from elcrec.training.config import ADDED_LATER, AFTER_TRAINING, STOPPING, TrainConfig, check_compatible
from elcrec.training.data import Interactions, eval_split, prefix_split, train_split
from elcrec.training.distributed import Dist
from elcrec.training.evaluate import evaluate_split, pooled_states
from elcrec.training.intent_health import calibrate, split_health, training_states
from elcrec.training.intent_ids import LiveIntents
from elcrec.training.intent_settle import settle_model
from elcrec.training.sampling import NegativeSampler

CHECKPOINT = Store.RUN_CHECKPOINT
LOG = Store.RUN_LOG


def _quiet(_: str) -> None:
    pass


def kmeans_centers(x: np.ndarray, k: int, iters: int, restarts: int, seed: int) -> np.ndarray:
    """faiss k-means (as the reference) -> L2-normalised centroids (k, d)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], k, niter=iters, nredo=restarts, seed=seed, verbose=False, min_points_per_centroid=1)
    km.train(x)
    assert km.centroids is not None
    c = km.centroids.astype(np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def first_real_width(*batches: np.ndarray) -> int:
    """Columns needed to keep every non-padding entry of left-padded (B, T) arrays."""
    T = batches[0].shape[1]
    width = 1
    for b in batches:
        nz = b > 0
        rows = nz.any(axis=1)
        if rows.any():
            width = max(width, T - int(nz[rows].argmax(axis=1).min()))
    return width


@dataclass
class TrainState:
    epoch: int = 0  # epochs completed
    best_metric: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed: float = 0.0
    ema_steps: int = 0  # steps averaged into the weight average (TrainConfig.ema)
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    def __init__(
        self,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        data: Interactions,
        run_dir: str | Path | None = None,
        device: str = "cpu",
        log: Callable[[str], None] = print,
        progress: bool | None = None,
        dist: Dist | None = None,
    ) -> None:
        check_compatible(model_cfg, train_cfg)
        self.mcfg, self.cfg, self.data, self.device, self.log = model_cfg, train_cfg, data, device, log
        self.progress = progress
        self.dist = dist or Dist()
        if not self.dist.is_main:  # rank 0 alone prints and writes files
            self.log, self.progress = _quiet, False
        self.run_dir = Path(run_dir) if run_dir else None
        torch.manual_seed(train_cfg.seed)
        self.rng = np.random.default_rng(train_cfg.seed)
        self.model = ELCRec(model_cfg).to(device)
        self.net = self.dist.wrap(self.model, device)  # the encoder pass; DDP averages the gradients
        if self.dist.rank > 0:  # own dropout masks on every rank (rank 0 keeps the 1-process stream)
            torch.manual_seed(self._rank_seed())
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=train_cfg.lr, betas=(train_cfg.beta1, train_cfg.beta2),
            weight_decay=train_cfg.weight_decay, foreach=True,  # one kernel per op over all tensors: faster on CPU
        )
        split = prefix_split if train_cfg.samples == "prefixes" else train_split
        self.train = split(data, model_cfg.max_len)
        self.valid = eval_split(data, model_cfg.max_len, "valid")
        self.sampler = NegativeSampler(data, model_cfg.vocab_size)
        self.state = TrainState()
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.settling: dict[str, Any] | None = None  # what settle_intents did (summary: result.json, manifest)
        self.follow: LiveIntents | None = None  # a warm start's live intents, which the centers follow
        self.following: dict[str, Any] | None = None  # what follow_intents did (summary)
        self.ema: list[torch.Tensor] | None = None  # the weight average, one tensor per model parameter
        self.centers_ready = False
        # With intent_queue: the latest normalised pooled states (newest first), assigned with each batch.
        self.queue: torch.Tensor | None = None

    # -- checkpoints ------------------------------------------------------------------------------
    def _rank_seed(self, epoch: int = 0) -> int:
        return int(np.random.SeedSequence([self.cfg.seed, self.dist.rank, epoch]).generate_state(1)[0])

    def save_checkpoint(self) -> None:
        if self.run_dir is None:
            return
        # Every rank's own dropout stream, so that a resumed run draws what an uninterrupted one would.
        rank_rngs = self.dist.all_gather_object(torch.get_rng_state()) if self.dist.enabled else None
        if not self.dist.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        blob: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "best": self.best_weights,
            "ema": self.ema,
            "state": json.dumps(self.state.__dict__),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": json.dumps(self.rng.bit_generator.state),
            "centers_ready": self.centers_ready,
            "intent_queue": self.queue,
            "configs": json.dumps({"model": self.mcfg.to_dict(), "train": self.cfg.to_dict()}),
        }
        if rank_rngs is not None:
            blob["torch_rng_ranks"] = rank_rngs
        tmp = self.run_dir / (CHECKPOINT + ".tmp")
        torch.save(blob, tmp)
        os.replace(tmp, self.run_dir / CHECKPOINT)

    def try_resume(self) -> bool:
        if self.run_dir is None or not (self.run_dir / CHECKPOINT).is_file():
            return False
        blob = _load_checkpoint(self.run_dir, self.device)
        saved = json.loads(blob["configs"])
        saved_train = {k: v for k, v in saved["train"].items() if k not in STOPPING + AFTER_TRAINING}
        if saved["model"] != self.mcfg.to_dict() or saved_train != self.cfg.trajectory():
            raise ValueError(
                f"{self.run_dir} holds a run with other settings; pass another --run-dir or remove it to start over"
            )
        was = {k: saved["train"].get(k, ADDED_LATER.get(k)) for k in STOPPING + AFTER_TRAINING}
        changed = {k: (old, getattr(self.cfg, k)) for k, old in was.items() if old != getattr(self.cfg, k)}
        if changed:
            self.log("resuming with " + ", ".join(f"{k} {new} (was {old})" for k, (old, new) in changed.items()))
        self.model.load_state_dict(blob["model"])
        self.optimizer.load_state_dict(blob["optimizer"])
        self.best_weights = blob["best"]
        self.ema = blob.get("ema")
        self.state = TrainState(**json.loads(blob["state"]))
        torch.set_rng_state(blob["torch_rng"].cpu())
        if self.dist.enabled:
            rank_rngs = blob.get("torch_rng_ranks")
            if rank_rngs is not None and len(rank_rngs) == self.dist.world_size:
                torch.set_rng_state(rank_rngs[self.dist.rank].cpu())
            elif self.dist.rank > 0:  # saved by another number of processes
                torch.manual_seed(self._rank_seed(self.state.epoch))
        self.rng.bit_generator.state = json.loads(blob["numpy_rng"])
        self.centers_ready = bool(blob["centers_ready"])
        queue = blob.get("intent_queue")
        self.queue = None if queue is None else queue.to(self.device)
        return True

    def warm_start(self, previous: ELCRec, n_known: int, intents: IntentSpace | None = None,
                   version: str | None = None) -> list[str]:
        """Start from `previous`'s weights (a model of the same architecture, perhaps over fewer items): see
        copy_weights. Its centers come with them, so the first epoch does not fit new ones by k-means (which would
        throw the learnt intents away). With `intents` (previous's, as served), the kept centers are previous's
        carried into the new state space instead of settled (follow_intents). Returns the tensors not copied."""
        skipped = copy_weights(self.model, previous, n_known)
        self.centers_ready = "intent_centers" not in skipped
        if intents is not None and self.centers_ready:
            self.follow = LiveIntents(previous, intents, n_known, version)
        return skipped

    # -- the algorithm ----------------------------------------------------------------------------
    def init_centers(self) -> None:
        def fit_centers() -> np.ndarray:
            pooled = pooled_states(self.model, self.train.inputs, device=self.device).numpy()
            cfg = self.cfg
            return kmeans_centers(pooled, self.mcfg.n_intents, cfg.kmeans_iters, cfg.kmeans_restarts, cfg.seed)

        c = self.dist.on_main(fit_centers)  # one k-means, the same centers on every rank
        with torch.no_grad():
            self.model.intent_centers.copy_(torch.from_numpy(c))
        self.centers_ready = True

    def batches(self) -> list[np.ndarray]:
        n, bs = len(self.train.users), self.cfg.batch_size
        if not self.cfg.bucket or self.cfg.batches == "random":
            perm = self.rng.permutation(n)
            return [perm[i : i + bs] for i in range(0, n, bs)]
        # Similar lengths together (random tie order), then batches in random order.
        lengths = self.train.lengths
        order = np.lexsort((self.rng.random(n), lengths))
        chunks = [order[i : i + bs] for i in range(0, n, bs)]
        return [chunks[i] for i in self.rng.permutation(len(chunks))]

    def encode(self, ids: torch.Tensor) -> torch.Tensor:
        """The encoder pass over (n, w) left-padded ids. With random batches on one process, rows are run in groups
        of similar length (lengths up to 1, 2, 4, 8, ...), each trimmed to its own width, then put back in order:
        the same hidden states at real positions, since the encoder reads a trimmed row as the end of a full one."""
        if self.cfg.batches != "random" or self.dist.enabled:  # DDP wants one forward pass per backward
            return self.net(ids)
        w = ids.shape[1]
        lengths = (ids > 0).sum(dim=1)
        group = torch.ceil(torch.log2(lengths.clamp_min(1).to(torch.float32))).to(torch.int64)
        order = torch.argsort(group, stable=True)
        counts = torch.unique_consecutive(group[order], return_counts=True)[1].tolist()
        parts = []
        for rows in torch.split(order, counts):
            width = min(w, int(lengths[rows].max().clamp_min(1)))
            h = self.net(ids[rows, -width:])
            parts.append(F.pad(h, (0, 0, w - width, 0)))  # zeros at padding positions, which no loss reads
        return torch.cat(parts)[torch.argsort(order)]

    def step(self, idx: np.ndarray) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        inputs, targets = self.train.inputs[idx], self.train.targets[idx]
        negatives = self.sampler.sample(self.train.users[idx], inputs.shape, self.rng)
        negatives = np.where(targets > 0, negatives, 0)
        view1, view2 = augment_batch(inputs, self.rng), augment_batch(inputs, self.rng)
        width = first_real_width(inputs, view1, view2) if cfg.bucket else self.mcfg.max_len
        # Every rank draws the whole global batch above (the 1-process one) and trains on its rows [lo, hi);
        # losses that compare rows with each other gather the whole batch.
        lo, hi = self.dist.bounds(len(idx))
        gather = functools.partial(self.dist.gather_rows, total=len(idx))
        B = hi - lo
        rows = np.concatenate([inputs[lo:hi], view1[lo:hi], view2[lo:hi]])
        ids = torch.from_numpy(rows[:, -width:]).to(self.device)  # (3B, w)
        pos = torch.from_numpy(targets[lo:hi, -width:]).to(self.device)
        neg = torch.from_numpy(negatives[lo:hi, -width:]).to(self.device)

        with torch.no_grad():  # the reference re-normalises the centers before every use
            model.intent_centers.copy_(F.normalize(model.intent_centers, dim=-1))
        centers = model.intent_centers

        hidden = self.encode(ids)  # (3B, w, d), one shared pass for the sequence and both views
        aux = hidden
        if self.mcfg.pooling == "real" and cfg.aux_grad_scale == "length":
            # The reference pools over all T positions, so only n/T of an auxiliary loss's gradient
            # reaches the n real positions (the rest goes to padding rows). Keep that dilution.
            scale = ((ids > 0).sum(1, keepdim=True).to(hidden.dtype) / self.mcfg.max_len).unsqueeze(-1)
            aux = hidden.detach() + (hidden - hidden.detach()) * scale
        h0, h1, h2 = hidden[:B], aux[B : 2 * B], aux[2 * B :]
        ids0, ids1, ids2 = ids[:B], ids[B : 2 * B], ids[2 * B :]

        if cfg.rec_loss == "softmax":
            rec = losses.next_item_softmax(h0, pos, model.item_table(), cfg.label_smoothing)
        elif cfg.rec_loss == "sampled":
            shared = self.rng.integers(1, self.mcfg.n_items + 1, size=cfg.n_negatives)
            rec = losses.next_item_sampled_softmax(h0, pos, model.item_table(), torch.from_numpy(shared).to(self.device))
        else:
            rec = losses.next_item_bce(h0, pos, neg, model.item_table())
        if self.dist.enabled:  # this rank's share of the mean over the global batch's targets
            n_local, n_global = int((targets[lo:hi] > 0).sum()), int((targets > 0).sum())
            rec = rec * (n_local / n_global) if n_local else h0.sum() * 0.0
        z = gather(F.normalize(model.pool(aux[:B], ids0), dim=-1))
        if cfg.intent_loss == "balanced":
            cluster, intents = losses.balanced_clustering(z, centers, cfg.trade_off, cfg.intent_temperature, self.queue)
            if cfg.intent_queue:
                recent = z.detach() if self.queue is None else torch.cat([z.detach(), self.queue])
                self.queue = recent[: cfg.intent_queue]
        else:
            cluster, intents = losses.elcm(z, centers, cfg.trade_off)
        p1, p2 = gather(model.pool(h1, ids1)), gather(model.pool(h2, ids2))
        if self.mcfg.pooling == "real":
            # Fast mode: one summary vector per view. In the reference, the ~44 padding rows of each
            # flattened view attend over the whole sequence and act as such a summary; aligning only
            # the real rows position by position (a crop against a mask) fights the next-item loss.
            v1 = losses.with_prototypes(p1.unsqueeze(1), centers, cfg.prototype).squeeze(1)
            v2 = losses.with_prototypes(p2.unsqueeze(1), centers, cfg.prototype).squeeze(1)
            inst = losses.nt_xent(v1, v2, cfg.temperature)
        else:
            inst = losses.instance_contrastive(gather(h1), gather(h2), centers, cfg.prototype)
        intent = losses.intent_contrastive(p1, p2, centers, intents)
        loss = rec + cfg.cf_weight * inst + cfg.intent_cf_weight * intent + cluster

        self.optimizer.zero_grad(set_to_none=True)
        if self.dist.enabled:
            # DDP averages gradients over ranks; the gathered losses are whole-batch on every rank already,
            # the local next-item share must count world_size times.
            (loss + (self.dist.world_size - 1) * rec).backward()
        else:
            loss.backward()
        self.optimizer.step()
        if cfg.ema > 0:
            self.update_average()
        if self.dist.enabled:  # report the global batch's losses, as one process would
            rec_local = rec.detach()
            rec = self.dist.all_sum(rec_local)
            loss = loss.detach() - rec_local + rec
        return {"loss": loss.item(), "rec": rec.item(), "inst": inst.item(), "intent": intent.item(), "elcm": cluster.item()}

    def update_average(self) -> None:
        """One step of the weight average; its decay ramps up as (1 + n) / (10 + n) so that the first steps (and
        the k-means centers set before them) are not frozen in."""
        params = [p.detach() for p in self.model.parameters()]
        if self.ema is None:
            self.ema = [p.clone() for p in params]
        self.state.ema_steps += 1
        n = self.state.ema_steps
        torch._foreach_lerp_(self.ema, params, 1.0 - min(self.cfg.ema, (1 + n) / (10 + n)))

    @contextlib.contextmanager
    def averaged_weights(self) -> Iterator[None]:
        """The model holds the weight average inside the block (where there is one), its raw weights again after."""
        if self.ema is None:
            yield
            return
        params = [p.detach() for p in self.model.parameters()]  # copies into these land in the parameters
        raw = [p.clone() for p in params]
        with torch.no_grad():
            torch._foreach_copy_(params, self.ema)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, raw)

    def validate(self) -> tuple[dict[str, float], dict[str, Any]]:
        """Validation metrics, and the health of the intents on the validation users (training/intent_health.py), of
        the centers as they are: the calibration (bias, profiles) is fitted once, at export."""
        def valid() -> tuple[dict[str, float], dict[str, Any]]:
            metrics = evaluate_split(self.model, self.valid, ("reference",), self.device)["reference"]
            return metrics, split_health(self.model, self.valid, self.device).to_dict()

        return self.dist.on_main(valid)  # rank 0 validates: one early-stopping decision for every rank

    def run_epoch(self) -> dict[str, Any]:
        start = time.perf_counter()
        if not self.centers_ready:
            self.init_centers()
        self.model.train()
        sums: dict[str, float] = {}
        batches = self.batches()
        for idx in tqdm(batches, desc=f"epoch {self.state.epoch + 1}", leave=False, disable=not self.progress):
            for k, v in self.step(idx).items():
                sums[k] = sums.get(k, 0.0) + v
        train_s = time.perf_counter() - start
        with self.averaged_weights():  # with an average, it is what is validated and kept
            valid, intents = self.validate()
            if valid["NDCG@20"] > self.state.best_metric:
                self.best_weights = copy.deepcopy(self.model.state_dict())
        seconds = time.perf_counter() - start
        self.state.epoch += 1
        self.state.elapsed += seconds
        record = {
            "epoch": self.state.epoch,
            **{k: round(v / len(batches), 5) for k, v in sums.items()},
            "valid": {k: round(v, 5) for k, v in valid.items()},
            "intents": {k: v for k, v in intents.items() if k not in ("users", "intents")},
            "train_s": round(train_s, 2),
            "seconds": round(seconds, 2),
        }
        if valid["NDCG@20"] > self.state.best_metric:
            self.state.best_metric, self.state.best_epoch, self.state.bad_epochs = valid["NDCG@20"], self.state.epoch, 0
        else:
            self.state.bad_epochs += 1
        self.state.history.append(record)
        return record

    def fit(self) -> ELCRec:
        resumed = self.try_resume()
        if len(set(self.dist.all_gather_object(self.state.epoch))) > 1:
            raise ValueError(
                f"the processes found different checkpoints in {self.run_dir}: it must be one folder all nodes share"
            )
        if resumed:
            self.log(f"resumed from {self.run_dir} after epoch {self.state.epoch}")
        while self.state.epoch < self.cfg.epochs and self.state.bad_epochs < self.cfg.patience:
            record = self.run_epoch()
            self.log(
                f"epoch {record['epoch']:3d}  loss {record['loss']:.4f} (rec {record['rec']:.4f} inst {record['inst']:.3f} "
                f"intent {record['intent']:.3f} elcm {record['elcm']:.4f})  valid HIT@20 {record['valid']['HIT@20']:.4f} "
                f"NDCG@20 {record['valid']['NDCG@20']:.4f}  intents used {record['intents']['used']} effective "
                f"{record['intents']['effective']:.1f}  {record['seconds']:.1f}s"
            )
            if self.run_dir is not None and self.dist.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                with open(self.run_dir / LOG, "a") as fh:
                    fh.write(json.dumps(record) + "\n")
            self.save_checkpoint()
        if self.stopped() == "patience":
            self.log(f"early stop: no better validation NDCG@20 for {self.cfg.patience} epochs")
        if self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
        self.model.eval()
        if self.follow is not None:
            self.follow_intents(self.follow)
        elif self.cfg.intent_settle:
            self.settle_intents()
        return self.model

    def follow_intents(self, live: LiveIntents) -> None:
        """A warm start's last step: the live version's centers carried into the kept encoder's state space, so that
        the intents keep their users and ids (training/intent_ids.py); the validation health of the trained and the
        followed centers, calibrated as export will, is recorded beside."""
        started = time.perf_counter()

        def follow() -> tuple[torch.Tensor, float, dict[str, Any]]:
            carried, fit = live.transport(self.model, self.data, self.device)
            states = training_states(self.model, self.data, self.device).cpu()
            balance = self.cfg.intent_loss == "balanced"
            trained = self.model.intent_centers.detach().float().cpu()
            before, after = (split_health(self.model, self.valid, self.device, calibrate(states, c, balance))
                             for c in (trained, carried))
            return carried, fit, {"valid_before": before.to_dict(), "valid_after": after.to_dict()}

        carried, fit, health = self.dist.on_main(follow)
        with torch.no_grad():
            self.model.intent_centers.copy_(carried.to(self.model.intent_centers.device))
        self.following = {"from": live.version, "states_aligned": round(fit, 4), **health}
        self.log(f"intent centers follow {live.version or 'the live version'}: its centers carried into the kept "
                 f"encoder's state space (states' mean cosine after the rotation {fit:.3f}); validation lift@100 "
                 f"{health['valid_before']['lift'] or 0.0:.2f} -> {health['valid_after']['lift'] or 0.0:.2f}, "
                 f"effective {health['valid_before']['effective']:.1f} -> {health['valid_after']['effective']:.1f} "
                 f"({time.perf_counter() - started:.1f}s)")

    def settle_intents(self) -> None:
        """The kept centers trained further on the kept encoder's states, kept where at least as good on the
        validation users (training/intent_settle.py settle_model); rank 0 settles, every rank takes its centers."""
        started = time.perf_counter()
        temperature = self.cfg.settle_temperature
        got = self.dist.on_main(lambda: settle_model(self.model, self.data, self.valid, self.cfg.intent_settle,
                                                     temperature, self.cfg.seed, self.device))
        with torch.no_grad():
            self.model.intent_centers.copy_(got.centers.to(self.model.intent_centers.device))
        self.settling = {**got.to_dict(self.cfg.intent_settle), "temperature": temperature}
        self.log(f"intent centers settled: {self.cfg.intent_settle} epochs at temperature {temperature:g} on the kept "
                 "encoder's states, validation "
                 f"lift@100 {got.before.lift or 0.0:.2f} -> {got.after.lift or 0.0:.2f}, effective "
                 f"{got.before.effective:.1f} -> {got.after.effective:.1f}: the {got.kept} centers kept "
                 f"({time.perf_counter() - started:.1f}s)")

    def stopped(self) -> str:
        """What ended training: "patience" (validation stopped improving) or "epochs" (the cap, --epochs: a run cut
        short, whose validation may still have been rising)."""
        return "patience" if self.state.bad_epochs >= self.cfg.patience else "epochs"

    def summary(self) -> dict[str, Any]:
        return {
            "epochs_run": self.state.epoch,
            "best_epoch": self.state.best_epoch,
            "best_valid_ndcg20": self.state.best_metric,
            "train_seconds": round(self.state.elapsed, 1),
            "instance_loss": "pooled" if self.mcfg.pooling == "real" else "flattened",
            "stopped": self.stopped(),
            **({"intent_settling": self.settling} if self.settling is not None else {}),
            **({"intent_following": self.following} if self.following is not None else {}),
        }


@torch.no_grad()
def copy_weights(model: ELCRec, previous: ELCRec, n_known: int) -> list[str]:
    """Copy `previous`'s weights into a (possibly larger) model: items 1..n_known keep their rows, the mask
    row moves to the end, new item rows keep their N(0, 0.02) init. Returns the tensors not copied."""
    old, new = previous.state_dict(), model.state_dict()
    skipped = []
    for name, target in new.items():
        source = old.get(name)
        if name == "item_embeddings.weight" and source is not None and source.shape[1:] == target.shape[1:]:
            target[: n_known + 1] = source[: n_known + 1]  # padding + known items
            target[-1] = source[-1]  # mask token
        elif source is not None and source.shape == target.shape:
            target.copy_(source)
        else:
            skipped.append(name)
    return skipped


def _load_checkpoint(run_dir: Path, device: str | torch.device) -> dict[str, Any]:
    blob: dict[str, Any] = torch.load(run_dir / CHECKPOINT, map_location=device, weights_only=True)
    return blob


@dataclass(frozen=True)
class RunCheckpoint:
    """A run's checkpoint as readers outside the trainer see it; the run may still be training."""

    model_config: ModelConfig
    train_config: TrainConfig
    state: TrainState
    weights: dict[str, torch.Tensor]  # the best so far (what export would take), else the latest

    def model(self) -> ELCRec:
        """The model with these weights, in eval mode."""
        model = ELCRec(self.model_config)
        model.load_state_dict(self.weights)
        return model.eval()


def read_checkpoint(run_dir: Path, device: str = "cpu") -> RunCheckpoint:
    """The checkpoint of the run in `run_dir` (written by `Trainer.save_checkpoint`). Raises FileNotFoundError
    naming the file where the directory holds none."""
    if not (run_dir / CHECKPOINT).is_file():
        raise FileNotFoundError(f"{run_dir / CHECKPOINT} does not exist: pass a run directory of `elcrec train`")
    blob = _load_checkpoint(run_dir, device)
    configs = json.loads(blob["configs"])
    known = {f.name for f in fields(TrainConfig)}
    return RunCheckpoint(
        model_config=ModelConfig.from_dict(configs["model"]),
        # Settings left out of the saved dict are at their defaults (TrainConfig.to_dict).
        train_config=TrainConfig(**{k: v for k, v in configs["train"].items() if k in known}),
        state=TrainState(**json.loads(blob["state"])),
        weights=blob["best"] or blob["model"],
    )
