"""Everything one model version needs to serve, built off the event loop and swapped in as one reference."""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from elcrec.model.artifact import Artifact, ArtifactError, Manifest, load_artifact
from elcrec.model.catalog import item_categories
from elcrec.model.config import ModelConfig
from elcrec.model.device import pick_device as model_device
from elcrec.model.encoder import ELCRec
from elcrec.model.intent_labels import version_labels
from elcrec.model.intents import DEFAULT_TEMPERATURE, IntentSpace
from elcrec.model.item_index import read_item_index
from elcrec.service.answer_cache import AnswerCache
from elcrec.service.catalog import ServedCatalog, serve_catalog
from elcrec.service.fused import FusedEncoder, fused
from elcrec.service.precision import PrecisionCheck, to_precision
from elcrec.service.retrieval import TORCH_EXACT, ItemIndex, TorchExactIndex
from elcrec.service.settings import Settings

log = logging.getLogger("elcrec.bundle")
INTENT_LABELS = 20  # intents named in the served-intent metric; the rest are counted as "other"


def pick_device(name: str) -> torch.device:
    return torch.device(model_device(name, "ELCREC_DEVICE"))


@dataclass(frozen=True, eq=False)
class ModelBundle:
    """Immutable once built: requests hold a reference to one bundle from start to end."""

    name: str  # the version directory's name, as CURRENT spells it
    version: str  # the manifest's version (normally the same)
    manifest: Manifest  # typed (model/manifest.py)
    config: ModelConfig
    model: ELCRec
    device: torch.device
    index: ItemIndex | TorchExactIndex
    item_ids: list[str | None]  # row -> external id (None for padding and mask)
    rows: dict[str, int]  # external id -> row
    popular_rows: list[int]  # most popular first, known items only
    intent_shares: list[float] | None
    # The mean normalised pooled state of the training users (manifest "intent_mean_state"); an intent's items are
    # ranked against it (model.intents.characteristic_scores). None for versions exported without it.
    intent_mean: torch.Tensor | None = None
    # Of the intent distribution (model.intents.intent_distribution): the model's training temperature.
    intent_temperature: float = DEFAULT_TEMPERATURE
    intent_health: dict[str, Any] | None = None  # the manifest's, shown by GET /v1/intents
    # The centers with the version's calibration (model/intents.py IntentSpace), on `device`: how a user is assigned
    # (the balancing bias) and how an intent is described (its profile). Set by build_bundle.
    intents: IntentSpace | None = None
    # (K, d) unit vectors: each intent's description (profile, else normalised center) minus intent_mean (none:
    # zero), the direction its items are listed by and a request steered towards it moves in (service/inference.py
    # steered). Set by build_bundle.
    intent_directions: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    # Each intent's label in elcrec_intents_served_total: its id for the INTENT_LABELS largest (by share of the
    # training users; the first ids where the version records no shares), "other" for the rest.
    intent_labels: list[str] = field(default_factory=list)
    # `model`'s forward as called per batch: TorchScript-traced (the same states, less Python per layer) or the
    # module itself.
    encode: Callable[[torch.Tensor], torch.Tensor] | None = None
    precision: str = "fp32"  # the encoder's; retrieval scores are fp32
    precision_check: dict[str, Any] | None = None  # half precision against fp32 (service/precision.py)
    # Answers already computed by this version, for repeat requests (ELCREC_ANSWER_CACHE entries; 0: none kept).
    answers: AnswerCache = field(default_factory=lambda: AnswerCache(0))
    # The version's catalog with its intent labels, prepared at load (service/catalog.py); None: it has none.
    catalog: ServedCatalog | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def encoder(self) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.encode if self.encode is not None else self.model

    @property
    def n_items(self) -> int:
        return self.config.n_items

    @property
    def n_intents(self) -> int:
        return self.config.n_intents

    @property
    def max_len(self) -> int:
        return self.config.max_len

    def external(self, row: int) -> str:
        item = self.item_ids[row]
        if item is None:  # retrieval never indexes these rows, so this is a bug, not bad input
            raise LookupError(f"row {row} is padding or mask and has no external id")
        return item

    def split_known(self, ids: Iterable[str]) -> tuple[list[int], list[str]]:
        """External ids -> (rows of the known ones, in order; the unknown ones, in order)."""
        rows: list[int] = []
        unknown: list[str] = []
        for item in ids:
            row = self.rows.get(item)
            if row is None:
                unknown.append(item)
            else:
                rows.append(row)
        return rows, unknown


def _row_map(item_ids: list[Any], n_items: int, where: Path) -> dict[str, int]:
    if item_ids[0] is not None or item_ids[-1] is not None:
        raise ArtifactError(f"{where}: rows 0 (padding) and {n_items + 1} (mask) must have no external id")
    rows: dict[str, int] = {}
    for row in range(1, n_items + 1):
        item = item_ids[row]
        if not isinstance(item, str) or not item:
            raise ArtifactError(f"{where}: item row {row} has no external id (got {item!r})")
        if item in rows:
            raise ArtifactError(f"{where}: external item id {item!r} appears on rows {rows[item]} and {row}")
        rows[item] = row
    return rows


def _labels(shares: list[float] | None, n_intents: int) -> list[str]:
    order = sorted(range(n_intents), key=lambda i: (-shares[i], i)) if shares is not None else range(n_intents)
    named = set(list(order)[:INTENT_LABELS])
    return [str(i) if i in named else "other" for i in range(n_intents)]


@dataclass(frozen=True)
class LoadOptions:
    """How a version is made servable, from the service settings (ELCREC_INDEX, ELCREC_INDEX_PARAMS,
    ELCREC_PRECISION, ELCREC_PRECISION_MIN_IDENTICAL, ELCREC_PRECISION_MIN_INTENTS, ELCREC_JIT,
    ELCREC_ANSWER_CACHE): one object from the settings to build_bundle. Its defaults are the settings' (Settings), but
    for the precision check and the answer cache, which are off."""

    index_spec: str = Settings.model_fields["index"].default
    index_params: str = Settings.model_fields["index_params"].default
    precision: str = Settings.model_fields["precision"].default
    min_identical: float = 0.0
    min_intents: float = 0.0
    jit: bool = Settings.model_fields["jit"].default
    answer_cache: int = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> LoadOptions:
        return cls(settings.index, settings.index_params, settings.precision, settings.precision_min_identical,
                   settings.precision_min_intents, settings.jit, settings.answer_cache)


def build_bundle(version_dir: Path, device: torch.device, options: LoadOptions = LoadOptions()) -> ModelBundle:
    """Load and check one version directory; raises ArtifactError for anything unusable. Blocking."""
    index_spec, index_params, precision = options.index_spec, options.index_params, options.precision
    art = load_artifact(version_dir, device)
    rows = _row_map(art.item_ids, art.config.n_items, version_dir)
    table = art.model.item_table().detach().float().cpu().numpy()
    model, check = to_precision(art.model, precision, art.intents.bias)
    if check is not None:
        log.info("%s in %s: %s", version_dir.name, precision, check)
        if not check.passes(options.min_identical, options.min_intents):
            raise ArtifactError(
                f"version {version_dir.name} in {precision} gives fp32's top-10 list for {check.top10_identical:.1%}"
                f" of {check.probes} probe histories (ELCREC_PRECISION_MIN_IDENTICAL={options.min_identical}) and its"
                f" intent for {check.intent_agreement:.1%} (ELCREC_PRECISION_MIN_INTENTS={options.min_intents});"
                f" it keeps {check.top10_overlap:.1%} of the top-10 items: serve it in fp32"
            )
    index: ItemIndex | TorchExactIndex
    if index_spec == TORCH_EXACT:
        if index_params:
            raise ArtifactError(f"the {TORCH_EXACT!r} index takes no ELCREC_INDEX_PARAMS, got {index_params!r}")
        index = TorchExactIndex(table, device)
        log.info("%s: exact torch top-k on %s over %d items", version_dir.name, device, art.config.n_items)
        return _bundle(version_dir, art, model, device, index, rows, precision, check, options, table)
    stored = None
    if art.index_path is not None and art.index_spec == index_spec:
        try:  # built by the export from these weights (both checksummed): no rebuild at start-up
            stored = read_item_index(art.index_path, art.config.n_items, art.config.d)
        except ValueError as exc:
            raise ArtifactError(f"the stored index of {version_dir} is unusable: {exc}") from exc
    try:
        index = ItemIndex(table, index_spec, index_params, stored)
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"cannot index the items of {version_dir}: {exc}") from exc
    log.info(
        "%s: %s index %r over %d items",
        version_dir.name,
        "stored" if stored is not None else "built",
        index_spec,
        art.config.n_items,
    )
    return _bundle(version_dir, art, model, device, index, rows, precision, check, options, table)


def _bundle(
    version_dir: Path,
    art: Artifact,
    model: ELCRec,
    device: torch.device,
    index: ItemIndex | TorchExactIndex,
    rows: dict[str, int],
    precision: str,
    check: PrecisionCheck | None,
    options: LoadOptions,
    table: np.ndarray,
) -> ModelBundle:
    info = art.info
    popular_rows = [rows[i] for i in info.popular_items if i in rows]
    for p in model.parameters():
        p.requires_grad_(False)
    encoder = fused(model)  # the same states from fewer, larger operations (service/fused.py)
    encode = _traced(encoder, device, version_dir.name) if options.jit else encoder
    # missing or from another K: no share rather than a wrong one; no mean state: intents by their centers alone
    mean = torch.tensor(info.intent_mean_state, dtype=torch.float32) if info.intent_mean_state else None
    shares = list(info.intent_shares) if info.intent_shares is not None else None
    with torch.no_grad():
        # the (possibly half-precision) model's centers, in fp32, with the stored calibration (fp32, on `device`)
        intents = IntentSpace(model.intent_centers.detach().float(), art.intents.bias, art.intents.profiles)
        described = intents.described()
        directions = F.normalize(described - (mean.to(described.device) if mean is not None else 0.0), dim=-1)
    catalog = art.read_catalog()
    served = None
    if catalog is not None:
        started = time.perf_counter()
        labels = version_labels(intents, mean, torch.from_numpy(table[1:-1]),
                                item_categories(catalog, art.item_ids))
        served = serve_catalog(catalog, art.item_ids, labels)
        log.info("%s: catalog %s (%d items, fields %s), intent labels in %.2f s", version_dir.name, catalog.source,
                 len(catalog), ", ".join(served.fields), time.perf_counter() - started)
    bundle = ModelBundle(
        name=version_dir.name,
        version=art.version,
        manifest=art.manifest,
        config=art.config,
        model=model,
        device=device,
        index=index,
        item_ids=art.item_ids,
        rows=rows,
        popular_rows=list(dict.fromkeys(popular_rows)),
        intent_shares=shares,
        intent_mean=mean,
        intent_temperature=info.intent_temperature,
        intent_health=info.intent_health,
        intents=intents,
        intent_directions=directions,
        intent_labels=_labels(shares, art.config.n_intents),
        encode=encode,
        precision=precision,
        precision_check=check.to_dict() if check is not None else None,
        answers=AnswerCache(options.answer_cache),
        catalog=served,
    )
    _warm_up(bundle)
    return bundle


def _traced(model: ELCRec | FusedEncoder, device: torch.device, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The encoder traced by TorchScript: less time for the small batches of a service on CPU, where the per-op
    Python and dispatch overhead dominates (docs/SERVING.md, *The path of a recommendation*). The trace follows batch size and length; outputs
    are checked equal to the module's on other shapes than the example's, else the module is used."""
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = _trace_of(model, device)
            for shape in ((1, 1), (3, model.cfg.max_len)):
                ids = torch.randint(1, model.cfg.n_items + 1, shape, device=device)
                ids[0, 0] = 0  # some padding
                if not torch.allclose(traced(ids), model(ids), atol=1e-5, rtol=1e-4):
                    raise RuntimeError(f"traced encoder differs from the module on shape {shape}")
    except Exception as exc:  # tracing is an optimisation: the module always works
        log.warning("%s: serving the encoder untraced (%s: %s)", name, type(exc).__name__, exc)
        return model
    return traced  # type: ignore[no-any-return]


# Traces by (architecture, device, dtype), the most recent few. Each torch.jit.trace leaves its compiled types in
# TorchScript's global compilation unit for good (docs/SERVING.md, *The path of a recommendation*): a service
# that traced every version it loads grew with every reload. A version of an architecture traced before gets a
# copy of that trace with its own weights loaded instead, which leaves nothing behind.
_TRACES: OrderedDict[tuple[Any, ...], torch.jit.ScriptModule] = OrderedDict()
_TRACES_KEPT = 2


def _trace_of(model: ELCRec | FusedEncoder, device: torch.device) -> torch.jit.ScriptModule:
    dtype = next(model.parameters()).dtype
    key = (type(model).__name__, model.cfg, str(device), dtype)
    template = _TRACES.get(key)
    if template is None:
        example = torch.ones(4, min(20, model.cfg.max_len), dtype=torch.long, device=device)
        template = _TRACES[key] = torch.jit.trace(model, example, check_trace=False)
        while len(_TRACES) > _TRACES_KEPT:
            _TRACES.popitem(last=False)
    else:
        _TRACES.move_to_end(key)
    traced = copy.deepcopy(template)
    # A trace's state holds the buffers a module does not save (the frequency filter's low-pass matrix) too.
    traced.load_state_dict({**dict(model.named_buffers()), **model.state_dict()})
    return traced


def _warm_up(bundle: ModelBundle) -> None:
    # A NaN row (a diverged run) loads fine and would be served as null scores and nonsense rankings.
    bad = [k for k, t in bundle.model.state_dict().items() if t.is_floating_point() and not t.isfinite().all()]
    if bad:
        raise ArtifactError(f"version {bundle.name} has non-finite weights in {', '.join(bad[:3])}")
    # The first call pays for lazy initialisation (kernels, allocator); better here than in a request.
    with torch.inference_mode():
        ids = torch.ones(2, bundle.max_len, dtype=torch.long, device=bundle.device)
        hidden = bundle.encoder(ids)
        if not torch.isfinite(hidden).all():
            raise ArtifactError(f"version {bundle.name} produces non-finite hidden states")
    bundle.index.search(np.zeros((1, bundle.config.d), dtype=np.float32), 1)
