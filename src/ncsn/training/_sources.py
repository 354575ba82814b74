"""Counter-based seeds and the three kinds of training data: what each step draws, the held-out
batch, and the fingerprint of a finite dataset (private to :mod:`ncsn.training`)."""

from __future__ import annotations

import hashlib
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

from ncsn._checks import check_batch, has_values
from ncsn._types import ScoreLoss
from ncsn.training.step import MicroBatch

_MASK = (1 << 64) - 1

# Streams of the counter-based seeds: derive_seed(seed, stream, *counters).
STEP = 1  # per (step, shard): data draws of a sampler source, the transform and the loss noise
PERMUTATION = 2  # per epoch: the shuffling of an indexed source
EVAL_DATA = 3  # the fixed held-out batch
EVAL_NOISE = 4  # the noise of every evaluation (the same each time, so values are comparable)


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def derive_seed(seed: int, *counters: int) -> int:
    """A 63-bit seed that is a fixed, well-mixed function of ``seed`` and the counters."""
    h = _splitmix64(seed & _MASK)
    for c in counters:
        h = _splitmix64(h ^ (c & _MASK))
    return h >> 1


class DataSampler(Protocol):
    """An infinite data source: ``sample(n, generator=g) -> [n, *event]``."""

    def __call__(self, n: int, /, *, generator: torch.Generator | None = ...) -> Tensor: ...


@runtime_checkable
class IndexedData(Protocol):
    """A finite dataset: ``len(data)`` and ``data[i]`` (a tensor, array, or a tuple led by one)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int, /) -> Any: ...


Data = Tensor | tuple[Tensor, Tensor | None] | IndexedData | DataSampler


class BatchTransform(Protocol):
    """A per-batch transform ``transform(x, *, generator) -> x`` (e.g. uniform dequantisation)."""

    def __call__(self, x: Tensor, /, *, generator: torch.Generator | None = ...) -> Tensor: ...


def _item(item: object, name: str) -> Tensor:
    if isinstance(item, (tuple, list)) and item:  # (image, label) pairs: keep the image
        item = item[0]
    if isinstance(item, Tensor):
        return item
    if isinstance(item, np.ndarray):
        return torch.from_numpy(item)
    raise TypeError(
        f"{name}[i] must be a tensor, a numpy array or a tuple starting with one; got "
        f"{type(item).__name__}"
    )


def _label(item: object, name: str) -> int:
    """The label of a dataset's ``(x, label)`` item (an int, or a 0-d integer tensor or array)."""
    label = item[1] if isinstance(item, (tuple, list)) and len(item) == 2 else None
    if isinstance(label, (Tensor, np.ndarray)) and label.ndim == 0:
        label = label.item()
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)):
        raise TypeError(
            f"{name}[i] must be an (x, label) pair with an integer label to train with labels; "
            f"got {type(item).__name__} {item!r:.80}"
        )
    return int(label)


def _labels(y: object, n: int, name: str) -> Tensor:
    """The labels of a tensor pair ``(x, y)``: ``[N]`` integers, one per example."""
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(f"the labels of {name} (x, y) must be an integer tensor [N]; got {y!r:.80}")
    if y.shape != (n,):
        raise ValueError(
            f"the labels of {name} (x, y) must have shape [N]={[n]}; got {tuple(y.shape)}"
        )
    return y.long()


class Source:
    """One of: a tensor ``[N, *event]``, a tensor pair ``(x, y)`` with labels ``y: [N]``, an
    indexed dataset, or a sampler callable.

    Indexed sources (tensor, dataset) are read in epochs: each epoch is a permutation drawn from
    ``derive_seed(seed, PERMUTATION, epoch)``, and batches run across epoch boundaries so every
    batch is full. Their position is ``(epoch, offset)``. A sampler source has no position: the
    batch of step ``t`` comes from the per-(step, shard) generator.

    Labels (class-conditional training) come with a tensor pair, or from a dataset's
    ``(x, label)`` items when ``labels`` is true; each micro-batch then carries its ``y``.
    """

    def __init__(self, data: object, name: str, *, labels: bool = False) -> None:
        self.name = name
        self.tensor: Tensor | None = None
        self.labels: Tensor | None = None  # of a tensor pair
        self.dataset: IndexedData | None = None
        self.dataset_labels = False
        self.sampler: DataSampler | None = None
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Tensor):
            # (x, y), as ncsn.data.load returns it; (x, None) is unlabelled data
            x, y = data
            if y is not None:
                self.labels = _labels(y, int(x.shape[0]) if x.ndim else 0, name)
            data = x
        elif labels and (isinstance(data, Tensor) or not isinstance(data, IndexedData)):
            raise TypeError(
                f"labels=True reads the labels of a dataset of (x, label) items; {name} is a "
                f"{type(data).__name__} (give a tensor pair (x, y) instead)"
            )
        if isinstance(data, Tensor):
            check_batch(data, name)
            if data.shape[0] < 1:
                raise ValueError(
                    f"{name} must hold at least one example; got shape {tuple(data.shape)}"
                )
            if not has_values(data):
                raise ValueError(f"{name} must hold values; got a tensor on the meta device")
            self.tensor = data
        elif isinstance(data, IndexedData) and not isinstance(data, (str, bytes)):
            if len(data) < 1:
                raise ValueError(f"{name} must hold at least one example; got an empty dataset")
            self.dataset = data
            self.dataset_labels = bool(labels)
        elif callable(data):
            self.sampler = data
        else:
            raise TypeError(
                f"{name} must be a tensor [N, *event], a dataset (len and indexing) or a callable "
                f"sample(n, *, generator); got {type(data).__name__}"
            )
        self.epoch = 0
        self.offset = 0
        self._perm: tuple[int, int, Tensor] | None = None  # (seed, epoch, permutation)
        self._gens: list[torch.Generator] = []  # one per part of a batch on this process
        self.device, self.dtype = torch.device("cpu"), torch.get_default_dtype()
        self.transform: BatchTransform | None = None
        self._record: dict[str, Any] | None = None

    @property
    def indexed(self) -> bool:
        return self.sampler is None

    @property
    def labelled(self) -> bool:
        """Whether the batches carry labels."""
        return self.labels is not None or self.dataset_labels

    def __len__(self) -> int:
        if self.tensor is not None:
            return int(self.tensor.shape[0])
        if self.dataset is not None:
            return len(self.dataset)
        raise TypeError(f"{self.name} is a sampler and has no length")

    def _permutation(self, seed: int, epoch: int) -> Tensor:
        # Keyed on the seed too: Trainer.restore replaces the seed, and a permutation cached under
        # the old seed would silently shuffle the resumed epoch differently.
        if self._perm is None or self._perm[:2] != (seed, epoch):
            gen = torch.Generator().manual_seed(derive_seed(seed, PERMUTATION, epoch))
            self._perm = (seed, epoch, torch.randperm(len(self), generator=gen))
        return self._perm[2]

    def next_indices(self, batch: int, seed: int) -> tuple[Tensor, tuple[int, int]]:
        """The next ``batch`` indices ``[batch]`` (CPU) of the epoch stream and the position after
        them, ``(epoch, offset)``; the position is committed by the caller (:meth:`advance`)."""
        n, parts = len(self), []
        epoch, offset = self.epoch, self.offset
        while batch > 0:
            take = min(batch, n - offset)
            parts.append(self._permutation(seed, epoch)[offset : offset + take])
            batch -= take
            offset += take
            if offset == n:
                epoch, offset = epoch + 1, 0
        return (parts[0] if len(parts) == 1 else torch.cat(parts)), (epoch, offset)

    def advance(self, position: tuple[int, int]) -> None:
        self.epoch, self.offset = position

    def example(self, i: int) -> Tensor:
        """Example ``i`` of an indexed source, as stored."""
        if self.tensor is not None:
            return self.tensor[i]
        if self.dataset is not None:
            return _item(self.dataset[i], self.name)
        raise TypeError(f"{self.name} is a sampler; it has no indices")

    def gather(self, index: Tensor, device: torch.device, dtype: torch.dtype) -> Tensor:
        """The examples at ``index`` as one batch on ``device`` in ``dtype``."""
        if self.tensor is not None:
            out = self.tensor[index.to(self.tensor.device)]
        elif self.dataset is not None:
            out = torch.stack([_item(self.dataset[i], self.name) for i in index.tolist()])
            check_batch(out, f"the examples of {self.name}")
        else:
            raise TypeError(f"{self.name} is a sampler; it has no indices")
        return out.to(device=device, dtype=dtype, non_blocking=True)

    def gather_labels(self, index: Tensor, device: torch.device) -> Tensor | None:
        """The labels ``[len(index)]`` (int64, on ``device``) of the examples at ``index``, or
        ``None`` for unlabelled data."""
        if self.labels is not None:
            return self.labels[index.to(self.labels.device)].to(device, non_blocking=True)
        if self.dataset is not None and self.dataset_labels:
            items = [_label(self.dataset[i], self.name) for i in index.tolist()]
            return torch.tensor(items, dtype=torch.int64, device=device)
        return None

    def draw(
        self, n: int, generator: torch.Generator, device: torch.device, dtype: torch.dtype
    ) -> Tensor:
        """``n`` examples from a sampler source, checked and moved to ``device`` in ``dtype``."""
        if self.sampler is None:
            raise TypeError(f"{self.name} is not a sampler")
        out = self.sampler(n, generator=generator)
        check_batch(out, f"the batch returned by {self.name}")
        if out.shape[0] != n:
            raise ValueError(
                f"{self.name}({n}, generator=...) returned {out.shape[0]} examples; expected {n}"
            )
        return out.to(device=device, dtype=dtype)

    def place(
        self, device: torch.device, dtype: torch.dtype, transform: BatchTransform | None
    ) -> None:
        """Where batches go from now on (``device``, ``dtype``), and the transform applied to
        them with their generators."""
        self.device, self.dtype, self.transform = device, dtype, transform

    def parts(
        self, step: int, *, seed: int, batch_size: int, shards: int, local: range
    ) -> tuple[list[MicroBatch], tuple[int, int] | None]:
        """This process's parts ``local`` of the ``shards`` parts of the batch of ``step``, each
        with the generator ``derive_seed(seed, STEP, step, k)`` that drew it (for a sampler) and
        transformed it; and the data position after the batch (``None`` for a sampler), which
        the caller commits with :meth:`advance` once the step is done."""
        device, dtype, transform = self.device, self.dtype, self.transform
        index, position = None, None
        if self.indexed:
            index, position = self.next_indices(batch_size, seed)
        if len(self._gens) < len(local):
            self._gens += [torch.Generator(device=device) for _ in range(len(local))]
        size = batch_size // shards
        parts = []
        for gen, k in zip(self._gens, local, strict=False):
            gen.manual_seed(derive_seed(seed, STEP, step, k))
            y = None
            if index is not None:
                part = index[k * size : (k + 1) * size]
                x, y = self.gather(part, device, dtype), self.gather_labels(part, device)
            else:
                x = self.draw(size, gen, device, dtype)
            if transform is not None:
                x = transform(x, generator=gen)
            parts.append(MicroBatch(x, gen, y))
        if not parts:  # shards >= world_size guarantees a part per process
            raise RuntimeError("this process has no shard of the batch")
        return parts, position

    def record(self) -> dict[str, Any] | None:
        """What identifies a finite dataset cheaply (``None`` for a sampler): its ``length``, the
        ``shape`` of one example and a ``fingerprint``, a hash of the values (in float64, so not
        of their dtype) and shapes of up to 64 examples at fixed, evenly strided indices."""
        if not self.indexed:
            return None
        if self._record is None:
            n = len(self)
            index = torch.linspace(0, n - 1, min(n, 64), dtype=torch.float64).round().long()
            digest = hashlib.sha256()
            shape: list[int] = []
            for i in index.tolist():
                example = self.example(i)
                shape = list(example.shape)
                digest.update(repr(shape).encode())
                flat = example.detach().to("cpu", torch.float64).contiguous().reshape(-1)
                digest.update(flat.numpy().tobytes())
            if self.labels is not None:  # a relabelled data set is another data set
                digest.update(self.labels[index.to(self.labels.device)].cpu().numpy().tobytes())
            self._record = {"length": n, "shape": shape, "fingerprint": digest.hexdigest()[:16]}
        return self._record

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset} if self.indexed else {}

    def load_state(self, state: dict[str, int], where: str, *, restart: bool = False) -> None:
        """Take a saved position; with ``restart``, one beyond the (changed) data starts the next
        epoch."""
        if not self.indexed:
            return
        try:
            epoch, offset = int(state["epoch"]), int(state["offset"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{where}: bad data position {state!r}") from err
        if restart and epoch >= 0 and offset >= len(self):
            epoch, offset = epoch + 1, 0
        if not (epoch >= 0 and 0 <= offset < len(self)):
            raise ValueError(
                f"{where}: data position (epoch={epoch}, offset={offset}) does not fit "
                f"{self.name} of {len(self)} examples"
            )
        self.epoch, self.offset = epoch, offset


class HeldOut:
    """The held-out data of an evaluation: a fixed batch of (at most) ``size`` examples, drawn
    once per seed, and the loss of a model on it with fixed noise."""

    def __init__(self, data: object, size: int, *, labels: bool = False) -> None:
        self.source, self.size = Source(data, "evaluation data", labels=labels), size
        self._batch: tuple[int, Tensor, Tensor | None] | None = None  # (seed, batch, labels)

    def batch(self, seed: int) -> tuple[Tensor, Tensor | None]:
        """The held-out batch of ``seed`` and its labels (``None`` for unlabelled data)."""
        if self._batch is None or self._batch[0] != seed:
            src = self.source
            gen = torch.Generator(device=src.device).manual_seed(derive_seed(seed, EVAL_DATA))
            y = None
            if src.indexed:
                cpu = torch.Generator().manual_seed(derive_seed(seed, EVAL_DATA))
                index = torch.randperm(len(src), generator=cpu)[: self.size]
                x, y = (
                    src.gather(index, src.device, src.dtype),
                    src.gather_labels(index, src.device),
                )
            else:
                x = src.draw(self.size, gen, src.device, src.dtype)
            x = x if src.transform is None else src.transform(x, generator=gen)
            self._batch = (seed, x, y)
        return self._batch[1], self._batch[2]

    def loss(self, model: nn.Module, loss: ScoreLoss, seed: int) -> float:
        """``loss`` of ``model`` (in eval mode, without gradients) on the batch of ``seed``, with
        the noise of ``seed`` (the same at every call, so values are comparable)."""
        x, y = self.batch(seed)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                gen = torch.Generator(device=self.source.device)
                gen.manual_seed(derive_seed(seed, EVAL_NOISE))
                if y is None:
                    return float(loss(model, x, generator=gen))
                return float(loss(model, x, y=y, generator=gen))  # type: ignore[call-arg]
        finally:
            model.train(was_training)
