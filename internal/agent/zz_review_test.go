package agent

import (
	"testing"
)

func TestZZReviewFloors(t *testing.T) {
	for _, s := range []string{"9E", "10E", "1e19", "1e20", "1e30", "1Qi", "0.5", "1m", "100m", "0.1Ki"} {
		f, err := ParseFreeFloor(s, false)
		t.Logf("space %q -> Amount=%d err=%v", s, f.Amount, err)
	}
}
