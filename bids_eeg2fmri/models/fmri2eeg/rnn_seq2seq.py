"""``rnn-seq2seq``: recurrent encoder over a BOLD window, linear autoregressive spectrogram decoder.

After the seed poster "Constructing EEG Spectrograms from fMRI Data using an Artificial Neural
Network": a recurrent encoder (GRU by default, LSTM as an option) reads the window of region signals
step by step; a linear decoder then generates the spectrogram of the ``horizon`` TRs centred in the
window one TR after the other, each step from the encoder's hidden state at that TR and the
decoder's previous output (the first step starts from zeros, the mean of the normalised
spectrogram).

The encoder is bidirectional by default: the haemodynamic response delays the BOLD trace of a TR's
neural activity by 4–20 s, so the evidence for a TR lies *after* it in the window, which a forward
pass alone would only reach through its final state. Training can use the poster's teacher forcing
— the previous step's measured spectrogram as decoder input (off by default, see
``teacher_forcing``) — with an optional scheduled sampling (Bengio et al. 2015): from
``teacher_forcing`` the probability of feeding the truth falls linearly to
``min_teacher_forcing`` over ``sampling_epochs`` epochs, each step of each sample drawing whether it
gets the truth or its own (detached) prediction. Inference (``eval()`` mode, or no targets given)
is purely autoregressive: the decoder only ever sees its own outputs.

``members`` > 1 trains that many independently initialised encoder–decoder pairs side by side
(each on its own loss, on the same batches) and predicts their mean: a deep ensemble
(Lakshminarayanan et al. 2017). With a few hundred training windows a single network's held-out
score depends on its random initialisation about as much as on the data (seed to seed the
demo's r on the driven cells moved by ±0.03); averaging members removes most of that variance
at a few seconds of CPU each. One member is the poster's model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..base import EEG2fMRIModel, ModelShape
from ..registry import register

CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}


@register("rnn-seq2seq", direction="fmri2eeg", lr=5e-3,
          defaults={"cell": "gru", "hidden": 32, "layers": 1, "bidirectional": True,
                    "dropout": 0.3, "teacher_forcing": 0.0, "scheduled_sampling": True,
                    "min_teacher_forcing": 0.0, "sampling_epochs": 10, "members": 1},
          paper="fMRI→EEG spectrogram seed poster (RNN encoder, autoregressive decoder)")
class RNNSeq2Seq(EEG2fMRIModel):
    """``(B, window, n_regions)`` → ``(B, horizon · n_bins)``; see the module docstring.

    Parameters
    ----------
    shape
        ``window``, ``n_channels`` (= input regions), ``horizon`` and ``n_targets`` (= ``horizon`` ×
        spectrogram bins).
    cell
        ``gru`` or ``lstm``.
    hidden
        Hidden units per direction.
    layers
        Stacked recurrent layers.
    bidirectional
        Read the window in both directions (see the module docstring).
    dropout
        Dropout on the encoder states (not on the inputs: dropping the non-GM regressor or a
        driving region at random time points only adds noise to a linear deconvolution).
    teacher_forcing
        Probability of feeding the measured previous step in training (1 = always, the poster's
        start of the schedule). Default 0: with the EEG's strong TR-to-TR autocorrelation the
        decoder otherwise learns to copy the measured previous TR, which inference never has —
        on the demo's data the held-out r on the driven cells rose from 0.28 to 0.32 and the MSE
        fell below the baselines without it (``docs/benchmarks.md``, *Demo*).
    scheduled_sampling
        Lower that probability linearly over epochs.
    min_teacher_forcing, sampling_epochs
        Where the schedule ends and after how many epochs.
    members
        Encoder–decoder pairs averaged (see the module docstring); 1 by default here, so that
        model files saved before the option build as they were saved.
    """

    def __init__(self, shape: ModelShape, cell: str = "gru", hidden: int = 32, layers: int = 1,
                 bidirectional: bool = True, dropout: float = 0.3, teacher_forcing: float = 0.0,
                 scheduled_sampling: bool = True, min_teacher_forcing: float = 0.0,
                 sampling_epochs: int = 10, members: int = 1) -> None:
        super().__init__(shape)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if shape.n_targets % shape.horizon:
            raise ValueError(f"{shape.n_targets} outputs do not split into {shape.horizon} steps")
        self.horizon = shape.horizon
        self.n_bins = shape.n_targets // shape.horizon
        # Where the predicted TRs sit in the window (SequenceSpec.offset; centred by default).
        self.offset = ((shape.window - shape.horizon) // 2 if shape.offset is None
                       else shape.offset)
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        # The first member's layers are this module's own (their names are those of model files
        # saved before ensembles); the others follow in ``extra``.
        first = _Member(cell, shape.n_channels, hidden, layers, bidirectional, dropout, self.n_bins)
        self.encoder, self.drop, self.decoder = first.encoder, first.drop, first.decoder
        self.extra = nn.ModuleList(
            _Member(cell, shape.n_channels, hidden, layers, bidirectional, dropout, self.n_bins)
            for _ in range(members - 1))
        self.p0 = float(teacher_forcing)
        self.p_min = float(min_teacher_forcing)
        self.scheduled = bool(scheduled_sampling)
        self.sampling_epochs = max(1, int(sampling_epochs))
        self.teacher_prob = self.p0

    def set_epoch(self, epoch: int) -> None:
        """Scheduled sampling: lower the teacher-forcing probability linearly with the epoch."""
        if self.scheduled:
            frac = min(1.0, epoch / self.sampling_epochs)
            self.teacher_prob = self.p0 + (self.p_min - self.p0) * frac
        else:
            self.teacher_prob = self.p0

    def encode(self, x: torch.Tensor, member: nn.Module | None = None) -> torch.Tensor:
        """Encoder states at the predicted TRs, ``(B, horizon, width)`` (of the first member, or
        of ``member``)."""
        member = self if member is None else member
        states, _ = member.encoder(x)
        return member.drop(states[:, self.offset:self.offset + self.horizon])

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Generate the ``horizon`` steps.

        Parameters
        ----------
        x
            ``(B, window, n_regions)`` normalised BOLD.
        y
            ``(B, horizon · n_bins)`` measured targets for teacher forcing; used only in training
            mode — in ``eval()`` mode it is ignored and every step reads the previous prediction.
        """
        outs = [self._generate(m, x, y) for m in self._members()]
        return outs[0] if len(outs) == 1 else torch.stack(outs).mean(dim=0)

    def _members(self) -> list[nn.Module]:
        return [self, *self.extra]

    def _generate(self, member: nn.Module, x: torch.Tensor,
                  y: torch.Tensor | None) -> torch.Tensor:
        """One member's ``horizon`` steps (see :meth:`forward`)."""
        ctx = self.encode(x, member)
        teacher = y.reshape(y.shape[0], self.horizon, self.n_bins) \
            if (y is not None and self.training) else None
        prev = ctx.new_zeros(x.shape[0], self.n_bins)
        out = []
        for k in range(self.horizon):
            step = member.decoder(torch.cat([ctx[:, k], prev], dim=1))
            out.append(step)
            prev = step
            if teacher is not None:
                use = torch.rand(x.shape[0], 1, device=x.device) < self.teacher_prob
                prev = torch.where(use, teacher[:, k], step.detach())
        return torch.stack(out, dim=1).reshape(x.shape[0], -1)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """MSE of the teacher-forced (scheduled-sampling) generation, averaged over members:
        each member is trained on its own error (not the ensemble's), so members stay
        independent estimators whose errors the mean averages out."""
        losses = [nn.functional.mse_loss(self._generate(m, batch["x"], batch["y"]), batch["y"])
                  for m in self._members()]
        return losses[0] if len(losses) == 1 else torch.stack(losses).mean()


class _Member(nn.Module):
    """One encoder–decoder pair of :class:`RNNSeq2Seq`."""

    def __init__(self, cell: str, n_in: int, hidden: int, layers: int, bidirectional: bool,
                 dropout: float, n_bins: int) -> None:
        super().__init__()
        self.encoder = CELLS[cell](n_in, hidden, num_layers=layers, batch_first=True,
                                   bidirectional=bidirectional,
                                   dropout=dropout if layers > 1 else 0.0)
        self.drop = nn.Dropout(dropout)
        width = hidden * (2 if bidirectional else 1)
        self.decoder = nn.Linear(width + n_bins, n_bins)
