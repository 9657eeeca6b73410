"""
The fleet budget's Lua script and the pure code around it: its key, its arguments, its reply.

Nothing here does I/O. The script is the whole shared state machine: it runs atomically in
Redis, reads the server's clock (``TIME``), so that the workers' clocks do not matter, and
keeps one key per API key (its state, MessagePack-encoded). It mirrors
``babou_async._ratelimit.AdaptiveRate`` (the module explains the law and its reasons; its
arithmetic is in-process Python on a local clock, so it cannot be reused inside Redis), with
these differences:

* successful answers are not sent one by one: each worker counts them and reports the count
  with its next call (an ``acquire`` or a 429), so a request costs one round trip; only
  while a cut is judged (its probation) are they reported as they come, so that 429s,
  reported at once, do not look more frequent than they are;
* a 429 carries the sequence number of the grant it answers, so that the answers to requests
  granted before a cut, by any worker, are known to belong to the burst that was cut;
* the send rate the law measures is the fleet's (every grant goes through the script);
* the "never more than twice what we send" cap of the recovery only stops growth, it never
  lowers the rate: a known ceiling holds through a quiet spell (in-process, the first answer
  after a quiet start drops a ceiling to twice the measured rate);
* polls wait while a progress request of the fleet waits, and take a token only while the
  bucket keeps a quarter of it in reserve;
* the end of the slow start is cut from what the fleet measurably sent, not from the slow
  start's rate (it grows by an eighth per answer: dozens of answers within half a second
  took it to 400 req/s while the fleet sent 50, and a cut from there stayed far above the
  limit); it paces at 0.45 of what the server accepted, as in-process, but recovers along
  the curve towards that (CUBIC's window at the loss) instead of only probing above 0.45;
* the bucket is emptied at every cut: what it held would go at once into the server's
  bucket, empty too, and its 429s would be taken for a limit below the new rate;
* a probation is judged on at least 8 answers (three 429s among the first three or four
  said little: 429s are reported at once, successes with a worker's next call), and takes
  the server to accept at least an eighth of the rate, so that one judgement never sends
  the fleet to its floor;
* the slow start's cut, undone as noise, goes back to pacing at what the fleet sent, never
  back to the slow start (that burst again, then a cut to the floor: issue #10's collapse).
"""

from __future__ import annotations

import hashlib
import math

import attrs

from babou_async._config import RateLimit
from babou_async._ratelimit import RequestPriority

__all__ = [
    "SCRIPT",
    "TTL_SECONDS",
    "Reply",
    "arguments",
    "budget_key",
    "config_argument",
    "parse_reply",
]

#: How long a budget's state outlives its last use, in seconds (longer while a pause lasts).
TTL_SECONDS = 900

# Constants mirror babou_async._ratelimit's (they are private there; the law is the same).
SCRIPT = """
local key = KEYS[1]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local function numbers(text)
  local out = {}
  for word in string.gmatch(text, '%S+') do out[#out + 1] = tonumber(word) end
  return out
end
local op, call, config = ARGV[1], numbers(ARGV[2]), numbers(ARGV[3])
local priority, successes, throttled = call[1], call[2], call[3] == 1
local retry_after, request_seq = call[4], call[5]
local ceiling, burst, adaptive = config[1], config[2], config[3] == 1
local min_rate, factor, slow_start, ttl = config[4], config[5], config[6] == 1, config[7]

local START_RATE, START_GROWTH, START_WINDOW, START_SHARE = 16.0, 0.125, 8, 0.25
local START_EXIT, OPEN_RATE, BURST_SECONDS = 0.45, 4096.0, 0.25
local CUBIC, PROBING, ALPHA, NOISE_SLACK = 0.001, 0.001 / 8, 1 / 64, 1 / 128
local NOISE_MAX, PROBE, PROBE_429, IGNORE_MAX, PACE = 0.25, 32, 3, 2.0, 0.95
local PROBE_MIN = 8
local MEASURE_BUCKET, SMOOTHING, EPSILON = 0.5, 0.8, 1e-9

local s = {}
local stored = redis.call('GET', key)
if stored then s = cmsgpack.unpack(stored) end

local function capacity()
  local span = BURST_SECONDS
  if ceiling > 0 then span = 1.0 end
  return math.max(1.0, math.min(burst, s.rate * span))
end

local function refill()
  local elapsed = now - s.ts
  if elapsed > 0 then
    s.tok = math.min(capacity(), s.tok + elapsed * s.rate)
    s.ts = now
  end
end

local function bits(window)
  local n = 0
  for _ = 1, START_WINDOW do
    n = n + window % 2
    window = math.floor(window / 2)
  end
  return n
end

if s.mode == nil then
  if ceiling > 0 then
    s.mode, s.rate = 'fixed', ceiling
    if adaptive then s.mode = 'steady' end
  elseif adaptive and slow_start then
    s.mode, s.rate = 'start', START_RATE
  else
    s.mode, s.rate = 'open', 0
  end
  s.tok, s.ts, s.nb, s.blk, s.pw = capacity(), now, 0, 0, 0
  s.seq, s.ans, s.cuts, s.thr, s.rec, s.win, s.noise = 0, 0, 0, 0, 0, 0, 0
  s.ev, s.wmax, s.ep, s.k = 0, s.rate, now, 0
  s.mr, s.mbs, s.mbc = 0, math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET, 0
  s.mbe = s.mbs + MEASURE_BUCKET
end

local function measure()
  if now < s.mbe then
    s.mbc = s.mbc + 1
    return
  end
  local bucket = math.floor(now / MEASURE_BUCKET) * MEASURE_BUCKET
  local current = s.mbc / math.max(bucket - s.mbs, MEASURE_BUCKET)
  if s.mr > 0 then current = current * SMOOTHING + s.mr * (1 - SMOOTHING) end
  s.mr, s.mbs, s.mbe, s.mbc = current, bucket, bucket + MEASURE_BUCKET, 1
end

local function sending_rate()
  local measured = math.max(s.mr, s.mbc / math.max(now - s.mbs, MEASURE_BUCKET))
  -- In slow start the rate grows by an eighth per answer, far faster than the fleet sends.
  if s.mode == 'start' then return math.min(s.rate, measured) end
  if s.mode ~= 'open' and now - s.blk < 1.0 then return s.rate end
  return measured
end

local function pause(seconds)
  s.nb = math.max(s.nb, now + math.max(0, seconds))
end

local function set_rate(rate)
  refill()
  rate = math.max(min_rate, rate)
  if ceiling > 0 then rate = math.min(rate, ceiling) end
  s.rate = rate
  s.tok = math.min(s.tok, capacity())
end

local function restart_recovery(w_max, rate)
  s.wmax, s.ep = math.max(w_max, min_rate), now
  set_rate(rate)
  s.k = (math.max(0, 1 - s.rate / s.wmax) / CUBIC) ^ (1 / 3)
end

local function undo()
  s.mode, s.wmax, s.ep, s.k = s.u_mode, s.u_wmax, s.u_ep, s.u_k
  set_rate(s.u_rate)
  s.ev = 0
end

local function congested()
  if s.mode == 'start' then
    local recent = bits(s.win)
    local older = s.ans - START_WINDOW
    local background = 0
    if older > 0 then background = (s.thr - recent) / older end
    return recent / START_WINDOW > START_SHARE + 2 * math.max(s.noise, background)
  end
  return s.rec > 2 * s.noise + NOISE_SLACK
end

local function cut()
  s.cuts, s.ev, s.ev_sb, s.ev_until = s.cuts + 1, 1, s.seq, now + IGNORE_MAX
  s.ev_fs, s.ev_a, s.ev_t = -1, 0, 0
  s.u_mode, s.u_rate, s.u_wmax, s.u_ep, s.u_k = s.mode, s.rate, s.wmax, s.ep, s.k
  local current = sending_rate()
  if s.mode ~= 'open' then current = math.min(s.rate, current) end
  -- The bucket starts empty: what it held would go at once into the server's, empty too.
  s.tok, s.ts = 0, now
  local w_max, rate
  if s.mode == 'start' then
    -- Back along the curve towards what the server accepted (CUBIC's W_max at the loss).
    w_max = current * math.max(1 - bits(s.win) / START_WINDOW, 1 / START_WINDOW)
    rate = w_max * START_EXIT
    -- Undone (taken for noise), the fleet paces at what it sent, not at the start's rate.
    s.u_mode, s.u_rate, s.u_wmax, s.u_ep, s.u_k = 'steady', current, current, now, 0
  else
    w_max, rate = current * (1 + factor) / 2, current * factor
  end
  s.mode = 'steady'
  restart_recovery(w_max, rate)
  if retry_after >= 0 then pause(retry_after) end
end

local function probe(is_429)
  s.ev_a = s.ev_a + 1
  if is_429 then s.ev_t = s.ev_t + 1 end
  if s.ev_a < PROBE and (s.ev_t < PROBE_429 or s.ev_a < PROBE_MIN) then return end
  local share = s.ev_t / s.ev_a
  if s.ev_t == 0 then
    s.noise, s.ev = s.noise * 0.75, 0
    restart_recovery(s.wmax, s.rate)
  elseif share <= 1.5 * s.noise then
    undo()
  elseif s.ev_fs < 0 or share < s.ev_fs / 2 then
    local accepted = math.max(1 - share, 1 / PROBE_MIN) * math.min(s.rate, sending_rate())
    restart_recovery(accepted, math.min(accepted * PACE, s.rate * 0.8))
    s.ev_fs, s.ev_sb, s.ev_until, s.ev_a, s.ev_t = share, s.seq, now + IGNORE_MAX, 0, 0
  else
    s.noise = math.min(NOISE_MAX, math.max(s.noise, s.rec))
    undo()
  end
end

local function grow()
  if s.mode == 'start' then
    local rate = s.rate * (1 + START_GROWTH)
    if rate >= OPEN_RATE then
      s.mode, s.rate = 'open', 0
      return
    end
    set_rate(rate)
  elseif s.mode == 'steady' then
    local t = now - s.ep - s.k
    local c = PROBING
    if t < 0 then c = CUBIC end
    local rate = s.wmax * (1 + c * t ^ 3)
    -- Never above twice what the fleet sends (a quiet spell must not disarm the next cut),
    -- but that cap never lowers the rate either: a known ceiling holds through a quiet spell.
    local cap = math.max(2 * sending_rate(), s.rate)
    if cap < rate then
      rate = cap
      local x = cap / s.wmax - 1
      local shift = (math.abs(x) / PROBING) ^ (1 / 3)
      if x < 0 then shift = -(math.abs(x) / CUBIC) ^ (1 / 3) end
      s.ep = now - s.k - shift
    end
    set_rate(rate)
  end
end

local function answer(is_429, seq)
  s.ans = s.ans + 1
  local value = 0
  if is_429 then value = 1 end
  s.rec = s.rec + math.max(ALPHA, 1 / s.ans) * (value - s.rec)
  s.thr = s.thr + value
  s.win = (s.win * 2 + value) % (2 ^ START_WINDOW)
  if not adaptive then
    if is_429 and retry_after >= 0 and ceiling > 0 then pause(retry_after) end
    return
  end
  if s.ev == 1 then
    local before = s.ans <= s.ev_sb
    if seq >= 0 then before = seq <= s.ev_sb end
    if before and now < s.ev_until then
      if is_429 and retry_after >= 0 then pause(retry_after) end
      return
    end
    probe(is_429)
  elseif is_429 then
    if congested() then cut() end
  else
    grow()
  end
end

local function take()
  if s.mode == 'open' then return 0 end
  refill()
  local cap = capacity()
  local need, hold = 1, 0
  if priority == 1 then
    need = 1 + math.floor(cap / 4)
    if now < s.pw then hold = s.pw - now + 1 / s.rate end
  end
  local wait = 0
  if now < s.nb then
    wait = s.nb - now
  elseif s.tok < need - EPSILON or hold > 0 then
    wait = math.max(hold, (need - s.tok) / s.rate, 1e-6)
  else
    s.tok = s.tok - 1
    return 0
  end
  if priority == 0 then s.pw = math.max(s.pw, now + wait) end
  if s.tok < 1 - EPSILON or now < s.nb then s.blk = now end
  return wait
end

local granted, wait = 0, 0
if op ~= 's' then
  for _ = 1, successes do answer(false, -1) end
  if throttled then answer(true, request_seq) end
  if op == 'a' then
    wait = take()
    if wait == 0 then
      granted, s.seq = 1, s.seq + 1
      measure()
    end
  end
  redis.call('SET', key, cmsgpack.pack(s), 'PX', math.ceil(math.max(ttl, s.nb - now + 60) * 1000))
end
local cap = capacity()
if s.mode == 'open' then cap = 0 end
return string.format('%d %.17g %d %.17g %.17g %.17g %.17g %s %d %d %d %.17g %.17g %d',
  granted, wait, s.seq, s.tok, s.rate, math.max(0, s.nb - now), cap, s.mode, s.cuts, s.thr,
  s.ans, s.noise, now, s.ev)
"""


def budget_key(namespace: str, api_key: str) -> str:
    """
    The Redis key of an API key's budget: ``{namespace}:budget:v1:`` and a hash of the key.

    SHA-256 of the namespace and the key, truncated to 128 bits: one-way, so that nothing in
    Redis (keys, values, script arguments) can give the API key back.
    """
    digest = hashlib.sha256(f"{namespace}\0{api_key}".encode()).hexdigest()[:32]
    return f"{namespace}:budget:v1:{digest}"


def config_argument(config: RateLimit) -> str:
    """
    The script's third argument: the budget's configuration, the same for every call.

    Every worker of a fleet must use the same :class:`~babou_async.RateLimit`.
    """
    ceiling = config.requests_per_second
    return " ".join(
        [
            repr(-1.0 if ceiling is None else float(ceiling)),
            str(config.burst),
            "1" if config.adaptive else "0",
            repr(float(config.min_rate)),
            repr(float(config.backoff_factor)),
            "1" if config.slow_start else "0",
            str(TTL_SECONDS),
        ]
    )


def arguments(
    op: str,
    config: str,
    *,
    priority: RequestPriority = RequestPriority.PROGRESS,
    successes: int = 0,
    throttled: bool = False,
    retry_after: float | None = None,
    request_seq: int | None = None,
) -> list[str]:
    """
    The script's ``ARGV`` for one call: the operation, its numbers, the configuration.

    Args:
        op: ``"a"`` acquire a token, ``"r"`` report answers only, ``"s"`` read the state.
        config: :func:`config_argument` of the budget's configuration.
        priority: Of the request asking for a token.
        successes: Answers other than 429 since the last call.
        throttled: Report one 429 as well.
        retry_after: Its ``Retry-After`` in seconds.
        request_seq: The grant sequence number of the request it answers, if known.
    """
    numbers = (
        int(priority),
        successes,
        int(throttled),
        -1.0 if retry_after is None else max(0.0, retry_after),
        -1 if request_seq is None else request_seq,
    )
    return [op, " ".join(map(repr, numbers)), config]


@attrs.frozen(kw_only=True)
class Reply:
    """
    What one call of the script answered.

    Attributes:
        granted: A token was taken.
        wait: Seconds to wait before asking again, when not granted.
        seq: Tokens granted so far, fleet-wide (the number of this grant, if granted).
        tokens: Tokens left in the bucket.
        rate: The fleet's rate, requests per second (``inf`` while not paced).
        pause: Seconds of ``Retry-After`` pause left.
        capacity: Bucket size (0 while not paced).
        mode: ``"start"``, ``"steady"``, ``"open"`` or ``"fixed"``.
        cuts: Congestion events so far.
        throttled: 429s reported so far.
        answered: Answers reported so far.
        noise: Share of 429s taken for background noise.
        server_time: The Redis server's clock, in seconds since the epoch.
        probing: A cut is being judged: answers should be reported as they come.
    """

    granted: bool
    wait: float
    seq: int
    tokens: float
    rate: float
    pause: float
    capacity: float
    mode: str
    cuts: int
    throttled: int
    answered: int
    noise: float
    server_time: float
    probing: bool


def parse_reply(raw: object) -> Reply:
    """Turn the script's answer (bytes or str, as the client decodes) into a :class:`Reply`."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    v = text.split(" ")
    if len(v) != 14:
        raise ValueError(f"unexpected reply from the budget script: {text[:100]!r}")
    mode = v[7]
    return Reply(
        granted=v[0] == "1",
        wait=float(v[1]),
        seq=int(v[2]),
        tokens=float(v[3]),
        rate=math.inf if mode == "open" else float(v[4]),
        pause=float(v[5]),
        capacity=float(v[6]),
        mode=mode,
        cuts=int(v[8]),
        throttled=int(v[9]),
        answered=int(v[10]),
        noise=float(v[11]),
        server_time=float(v[12]),
        probing=v[13] == "1",
    )
