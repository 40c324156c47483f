"""The spacing a slow account keeps between accepted requests, found from its answers.

Used by :class:`fwprep.limits.AdaptiveRateLimiter`: a limit kept as a minimum
spacing shows itself in which requests are refused, and a limiter that
knows it can send each request the moment the server will take it.
"""

from __future__ import annotations

import math

__all__ = ["SLOW", "Spacing", "is_slow"]

SLOW = 1.0  # seconds between requests from which a slow account's spacing is steered by
_TIGHT = 0.03  # a spacing bracket this narrow (relative) is not probed further
_STEP = 0.025  # the first step down from a spacing that works (relative)
_RETRY_AFTER_GRAIN = 1.0  # Retry-After counts whole seconds, rounded up
_FIRST_CHECK = 5  # accepted requests at a newly settled spacing before it is put to the test
_RECHECK = 30  # accepted requests at a settled spacing before it is put to the test again
_JITTER = 0.03  # how far (relative) an answer may cross a spacing bound by the network's jitter
_AFRESH = 15.0  # seconds after a spacing is given up that one is looked for afresh
# A refusal this close under the bracket's top (relative) is one at the top: narrowing
# steps go 2.5% under it or more, so it was sent at the top, which an answer's jitter
# had set a hair short of the spacing (refused there again and again, unraised).
_AT_TOP = 0.005


def is_slow(interval: float) -> bool:
    """Whether requests ``interval`` seconds apart are a slow pace: one a second or slower.

    Give or take the network's jitter: at a limit of 60 requests a minute
    the spacing is 1 s, and one request accepted a few milliseconds sooner
    (the one before it was late on the wire) must not turn the pace into a
    fast one. Windows of answers would then steer it, each request at a
    random point of its slot, and a bucket one token deep refuses about a
    third of them.
    """
    return interval >= SLOW * (1 - _JITTER)


class Spacing:
    """The shortest spacing after an accepted request that the server accepts, once it shows.

    A limit kept as a minimum spacing between requests (a token bucket one
    token deep, as slow accounts have) refuses every request sent less than
    ``T`` after the last accepted one and accepts every one sent later. Then
    each 429 says ``T`` is longer than its distance from the last success
    (:attr:`low`), and each success that ``T`` is at most its distance from
    the one before (:attr:`high`). While the two agree, ``T`` lies between
    them. Once they disagree by more than the network's jitter (other
    clients draw on the budget too, or the limit has another shape), the
    spacing is given up, and so it is when a second request at or past
    the top is refused (the top is raised by the jitter once). It is
    looked for afresh 15 s later: the clients whose requests broke it may
    be done, as a shard's neighbours are near the end of a job. A
    429's ``Retry-After`` narrows the bracket from both sides: the time it
    names is one the server accepts, and, counted in whole seconds rounded
    up from when the server answered, less than a second late.

    The bracket is narrowed from above: the next request goes a small step
    (2.5%) under the shortest spacing accepted so far, and each step that is
    accepted doubles the next one (never past the middle of the bracket).
    A refused step costs one 429 and no time (unless the 429's
    ``Retry-After``, in whole seconds, pauses the client past the
    spacing: at a spacing of a second or two), and ends the narrowing once
    the bracket is within 3%. Halving the bracket instead costs a 429 for
    every probe under ``T``: when ``T`` lies near the top of the bracket,
    as often as not, that is every probe.

    A spacing that has settled is put to the test now and then (after 5
    accepted requests, then every 30): one request goes at half of it. A
    real spacing refuses it (one 429, and, but for such a pause, no time
    lost: the next request still goes one spacing after the last
    success); an account that accepts
    it has no such spacing (the bracket came from other clients' traffic,
    or the limit grew), and the spacing is given up.

    Args:
        alone: the client expects no other on the account. Its bracket is
            then its own answers', and the first test waits as long as the
            later ones (30 accepted requests): it looks for a limit that
            grew, which the 5th would find no sooner than the 30th.
    """

    def __init__(self, *, alone: bool = False) -> None:
        self.alone = alone
        self._afresh()

    def _afresh(self) -> None:
        """Forget every answer: nothing is known of a spacing."""
        self.low = 0.0
        self.high = math.inf
        self.last_ok = -math.inf
        self.abandoned = False
        self.settled = 0
        self.checking = False  # the next request tests the spacing at half of it
        self.verified = False  # a test was refused: the spacing is real
        self.refused = self.accepted = 0  # answers that moved a bound
        self.step = _STEP  # how far (relative) under :attr:`high` the next request goes
        self.raised = False  # a refusal at the top has raised it by the jitter
        self.abandoned_at = math.inf  # when the request whose answer gave it up left

    def answer(
        self,
        sent_at: float,
        *,
        throttled: bool,
        retry_after: float | None = None,
        answered_at: float | None = None,
    ) -> None:
        """Fold in one answer, for a request sent at ``sent_at``.

        ``retry_after``: a 429's ``Retry-After``, in seconds, that came with
        the answer at ``answered_at``. Counted from the answer, it names a
        time the server accepts: a bound on the spacing from above. Counted
        from when the request left, less a second (the header's grain), it
        names one the server still refuses: a bound from below. (Counted
        from the answer, that bound would be a round trip too long: at one
        request a second, longer than the spacing itself.)
        """
        if self.abandoned and sent_at - self.abandoned_at >= _AFRESH:
            self._afresh()
        if sent_at <= self.last_ok:
            return  # overtaken by a later request's answer
        gap = sent_at - self.last_ok
        checked, self.checking = self.checking, False
        # Answers near a bound by less than the network's jitter move it, not break it.
        if throttled:
            self.verified = self.verified or checked
            if self.last_ok > -math.inf:
                self.refused += 1
                self.step = _STEP
                self.low = max(self.low, gap)
                if retry_after is not None:
                    answered = sent_at if answered_at is None else answered_at
                    self.high = min(self.high, answered + retry_after - self.last_ok)
                    earliest = sent_at + retry_after - _RETRY_AFTER_GRAIN
                    self.low = max(self.low, earliest - self.last_ok)
                # At or past the top (_AT_TOP: a hair under it is at it).
                if self.low >= self.high * (1 - _AT_TOP):
                    if self.raised or self.low >= self.high * (1 + _JITTER):
                        self._give_up(sent_at)
                    else:
                        # Once: raised again and again, the top would creep after
                        # a neighbour's requests, a few percent a refusal.
                        self.high = self.low * (1 + _JITTER)
                        self.raised = True
            return
        if gap <= self.low * (1 - _JITTER):
            self._give_up(sent_at)
        elif gap <= self.low:
            self.low = gap * (1 - _JITTER)
        if gap < self.high and self.accepted:
            self.step = min(0.5, self.step * 2)  # a step down was accepted: a longer one next
        self.high = min(self.high, gap)
        self.accepted += gap < math.inf
        self.last_ok = sent_at
        self.settled = self.settled + 1 if self.tight else 0
        if self.settled >= (_RECHECK if self.verified or self.alone else _FIRST_CHECK):
            self.checking = True  # a success at half the spacing breaks the bracket above
            self.settled = 0

    def _give_up(self, sent_at: float) -> None:
        if not self.abandoned:
            self.abandoned, self.abandoned_at = True, sent_at

    @property
    def tight(self) -> bool:
        """Whether the bracket is within 3%: it is not narrowed further."""
        return self.high - self.low <= _TIGHT * self.high

    @property
    def known(self) -> bool:
        """Whether the bracket holds on three answers or more each side, at a second or more.

        Two of each are not enough: shards of one account, each cut under one
        request a second, can answer like a lone client for a while, and one
        that steered by such a spacing would take every token from the others.
        """
        return (
            not self.abandoned
            and min(self.refused, self.accepted) >= 3
            and 0.0 < self.low < self.high < math.inf
            and is_slow(self.high)
        )

    def next_spacing(self) -> float:
        """When to send the next request after the last success: a step under the top."""
        if self.checking:
            return self.high / 2
        if self.tight:
            return self.high
        return max(self.high * (1 - self.step), (self.low + self.high) / 2)
