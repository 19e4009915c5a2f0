"""Candidate against champion, feature by feature, from the ``importance.*`` shares both recorded
(stdlib only): which features moved in share or rank beyond a threshold, in plain words.

A feature *moved* when its share changed by at least ``SHARE_CHANGE`` (5 points of the total), or
when it is in either run's top ``TOP`` and its rank changed by at least ``RANK_CHANGE`` places
(ranks in the long tail of near-zero shares swap by noise and are not reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .names import read_recorded

SHARE_CHANGE = 0.05
RANK_CHANGE = 3
TOP = 10


@dataclass
class FeatureMove:
    feature: str
    champion: float | None        # share, None when the run did not have the feature
    candidate: float | None
    champion_rank: int | None
    candidate_rank: int | None

    def sentence(self, labels: tuple[str, str] = ("champion", "candidate")) -> str:
        base, new = labels
        if self.champion is None:
            return (f"{self.feature} is new in the {new}: {self.candidate:.0%} of its importance "
                    f"(rank {self.candidate_rank}).")
        if self.candidate is None:
            return f"{self.feature} is no longer an input (it had {self.champion:.0%} under the {base})."
        verb = "now carries" if self.candidate >= self.champion else "carries only"
        rank = (f", rank {self.champion_rank} → {self.candidate_rank}" if self.champion_rank != self.candidate_rank
                else f", still rank {self.candidate_rank}")
        return f"{self.feature} {verb} {self.candidate:.0%} of the importance (was {self.champion:.0%}{rank})."


def _ranks(shares: dict[str, float]) -> dict[str, int]:
    return {feature: n for n, feature in enumerate(shares, 1)}


def moved_features(candidate: dict, champion: dict | None, share_change: float = SHARE_CHANGE,
                   rank_change: int = RANK_CHANGE, top: int = TOP) -> list[FeatureMove]:
    """Features whose share or rank moved beyond the thresholds, biggest share change first;
    arguments are metrics, flat or ``{file: {name: value}}``."""
    ours, theirs = read_recorded(candidate), read_recorded(champion or {})
    if not ours or not theirs:
        return []
    our_rank, their_rank = _ranks(ours), _ranks(theirs)
    moves = []
    for feature in dict.fromkeys([*ours, *theirs]):
        a, b = ours.get(feature), theirs.get(feature)
        ra, rb = our_rank.get(feature), their_rank.get(feature)
        if a is None or b is None:
            if (a or 0) >= share_change or (b or 0) >= share_change or min(ra or top + 1, rb or top + 1) <= top:
                moves.append(FeatureMove(feature, b, a, rb, ra))
            continue
        in_top = min(ra, rb) <= top
        if abs(a - b) >= share_change or (in_top and abs(ra - rb) >= rank_change):
            moves.append(FeatureMove(feature, b, a, rb, ra))
    return sorted(moves, key=lambda m: -abs((m.candidate or 0) - (m.champion or 0)))


def comparison_html(candidate: dict, champion: dict | None,
                    labels: tuple[str, str] = ("champion", "candidate")) -> str:
    """The "What the model relies on" section ('' when the candidate recorded no importances)."""
    ours = read_recorded(candidate)
    if not ours:
        return ""
    base, new = labels
    theirs = read_recorded(champion or {})
    if not theirs:
        lead = ", ".join(f"{escape(f)} ({s:.0%})" for f, s in list(ours.items())[:5])
        note = f"No {escape(base)} explanation to compare with"
        return (f"<h2>What the model relies on</h2><p>{note}; the {escape(new)} relies most on {lead}.</p>")
    moves = moved_features(candidate, champion)
    our_rank, their_rank = _ranks(ours), _ranks(theirs)
    if moves:
        items = "".join(f"<li>{escape(m.sentence(labels))}</li>" for m in moves)
        verdict = (f"<p><strong>{len(moves)} feature(s) moved beyond {SHARE_CHANGE:.0%} of the importance or "
                   f"{RANK_CHANGE} ranks:</strong></p><ul class='moved'>{items}</ul>")
    else:
        verdict = (f"<p>No feature moved by {SHARE_CHANGE:.0%} of the importance or {RANK_CHANGE} ranks: the "
                   f"{escape(new)} relies on the same features as the {escape(base)}.</p>")
    rows = "".join(
        f"<tr><td>{escape(f)}</td><td>{_share(theirs.get(f))}</td><td>{their_rank.get(f, '—')}</td>"
        f"<td>{_share(ours.get(f))}</td><td>{our_rank.get(f, '—')}</td></tr>"
        for f in list(dict.fromkeys([*list(ours)[:TOP], *list(theirs)[:TOP]])))
    return (f"<h2>What the model relies on</h2>{verdict}<table><tr><th>feature</th><th>{escape(base)} share</th>"
            f"<th>rank</th><th>{escape(new)} share</th><th>rank</th></tr>{rows}</table>")


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def approval_line(metrics: dict, top: int = 3) -> str:
    """One line for history and the model card: the features the version relies on most."""
    shares = read_recorded(metrics)
    if not shares:
        return ""
    return "relies on " + ", ".join(f"{f} {s:.0%}" for f, s in list(shares.items())[:top])


__all__ = ["FeatureMove", "approval_line", "comparison_html", "moved_features"]
