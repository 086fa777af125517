package load

import (
	"time"
)

// noLoadBatch is how many calls one estimate of the no-load latency is the
// mean of. With a coefficient of variation of 1 (a 50/50 mix of a fast and
// a slow method) the mean of 32 calls is within ±18 % of the true mean one
// time in about 1.5; the estimates are then smoothed (noLoadSmoothing).
const noLoadBatch = 32

// noLoadSmoothing is the weight of a new batch of lone calls in the no-load
// latency estimate.
const noLoadSmoothing = 0.5

// noLoadBuckets is how many slots the sliding minimum over NoLoadWindow
// keeps: the minimum is exact to within one slot (NoLoadWindow/8).
const noLoadBuckets = 8

// queueing estimates the no-load latency and decides QueueingHigh. It is
// owned by the sampler goroutine.
//
// The no-load latency is the mean latency of calls that began while no
// other timed call was in flight ("lone" calls: nothing could have queued
// them), in batches of noLoadBatch, smoothed. A replica that is never idle
// has no lone calls; for it the estimate is the lowest mean latency of a
// batch of noLoadBatch calls over the last NoLoadWindow. The lowest batch
// since the last lone estimate also caps it, so a service that became
// faster while busy is followed at once.
type queueing struct {
	// Immutable:
	window        time.Duration
	enter, exit   float64 // enter < 0: QueueingHigh is never set
	minDelayMicro float64

	// Batches in progress (µs):
	aloneN, aloneSum uint64
	allN, allSum     uint64

	aloneEst      float64 // smoothed lone-call latency, µs; 0 until the first batch
	aloneAt       time.Time
	sinceAloneMin float64 // lowest batch mean since aloneAt; 0 if none
	mins          [noLoadBuckets]bucket

	high bool
}

type bucket struct {
	start time.Time // zero: empty
	min   float64
}

func newQueueing(cfg Config) queueing {
	return queueing{
		window:        cfg.NoLoadWindow,
		enter:         cfg.QueueingEnter,
		exit:          cfg.QueueingExit,
		minDelayMicro: float64(cfg.QueueingMinDelay) / float64(time.Microsecond),
	}
}

// add takes one period's samples: n calls ended with a latency sum of sum
// µs, na of them lone calls with sum suma.
func (q *queueing) add(now time.Time, n, sum, na, suma uint64) {
	q.aloneN += na
	q.aloneSum += suma
	if q.aloneN >= noLoadBatch {
		m := float64(q.aloneSum) / float64(q.aloneN)
		if q.aloneEst == 0 {
			q.aloneEst = m
		} else {
			q.aloneEst += noLoadSmoothing * (m - q.aloneEst)
		}
		q.aloneAt = now
		q.sinceAloneMin = 0
		q.aloneN, q.aloneSum = 0, 0
	}
	q.allN += n
	q.allSum += sum
	if q.allN >= noLoadBatch {
		m := float64(q.allSum) / float64(q.allN)
		q.allN, q.allSum = 0, 0
		if q.sinceAloneMin == 0 || m < q.sinceAloneMin {
			q.sinceAloneMin = m
		}
		slot := q.window / noLoadBuckets
		b := &q.mins[int(now.UnixNano()/int64(slot))%noLoadBuckets]
		if start := now.Truncate(slot); !b.start.Equal(start) {
			*b = bucket{start: start, min: m}
		} else if m < b.min {
			b.min = m
		}
	}
}

// noLoad returns the no-load latency estimate in µs, or 0 if there is none
// yet.
func (q *queueing) noLoad(now time.Time) float64 {
	if q.aloneEst > 0 && now.Sub(q.aloneAt) <= q.window {
		v := q.aloneEst
		if q.sinceAloneMin > 0 && q.sinceAloneMin < v {
			v = q.sinceAloneMin
		}
		return v
	}
	var v float64
	for _, b := range q.mins {
		if !b.start.IsZero() && now.Sub(b.start) < q.window && (v == 0 || b.min < v) {
			v = b.min
		}
	}
	if v == 0 {
		v = q.aloneEst // stale, or 0: nothing better
	}
	return v
}

// decide applies the hysteresis to the smoothed latency and no-load latency
// (µs); it returns the share of latency spent queueing and whether the
// state changed.
func (q *queueing) decide(latency, noLoad float64) (share float64, changed bool) {
	if noLoad > 0 && latency > noLoad {
		share = 1 - noLoad/latency
	}
	delay := latency - noLoad
	switch {
	case q.enter < 0 || noLoad <= 0:
		changed = q.high
		q.high = false
	case !q.high && share >= q.enter && delay >= q.minDelayMicro:
		q.high, changed = true, true
	case q.high && (share < q.exit || delay < q.minDelayMicro):
		q.high, changed = false, true
	}
	return share, changed
}
