package cluster

import "testing"

func TestSettleSeconds(t *testing.T) {
	var tr [][2]float64
	for i := 0; i < 100; i++ { // 10 s at 10 per second
		v := 10.0
		if i >= 20 && i < 35 {
			v = 20 // off the band from 2 s to 3.5 s
		}
		tr = append(tr, [2]float64{float64(i) / 10, v})
	}
	if got := SettleSeconds(tr, 2, 10, 0.2); got < 1.49 || got > 1.51 {
		t.Errorf("settled after %v, want 1.5", got)
	}
	if got := SettleSeconds(tr, 9.5, 10, 0.2); got != -1 {
		t.Errorf("half a second of trace: %v, want -1 (never a whole second)", got)
	}
}
