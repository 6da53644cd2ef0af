/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package agent

import (
	"strings"
	"testing"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

func TestParseFreeFloor(t *testing.T) {
	for _, tt := range []struct {
		in      string
		inodes  bool
		want    FreeFloor
		wantErr string
	}{
		{in: "15%", want: FreeFloor{Percent: 15, IsPercent: true}},
		{in: "0.5%", want: FreeFloor{Percent: 0.5, IsPercent: true}},
		{in: "20Gi", want: FreeFloor{Amount: 20 << 30}},
		{in: "0", want: FreeFloor{}},
		{in: "100000", inodes: true, want: FreeFloor{Amount: 100000, inodes: true}},
		{in: "10%", inodes: true, want: FreeFloor{Percent: 10, IsPercent: true, inodes: true}},
		{in: "101%", wantErr: `"101%" is not a percentage from 0% to 100%`},
		{in: "-1%", wantErr: "is not a percentage"},
		{in: "NaN%", wantErr: "is not a percentage"},
		{in: "-1Gi", wantErr: "nor an amount of bytes (20Gi)"},
		{in: "lots", wantErr: "nor an amount of bytes"},
		{in: "1Gi", inodes: true, wantErr: "nor a number of inodes (100000)"},
		{in: "500m", wantErr: `"500m" is not a whole number of bytes up to 8Ei (for megabytes, write 500M or 500Mi)`},
		{in: "0.5", wantErr: "is not a whole number of bytes"},
		{in: "10E", wantErr: "is not a whole number of bytes"},
		{in: "1e30", wantErr: "is not a whole number of bytes"},
		{in: "7Ei", want: FreeFloor{Amount: 7 << 60}},
	} {
		got, err := ParseFreeFloor(tt.in, tt.inodes)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseFreeFloor(%q, %v) = %v, %v; want error %q", tt.in, tt.inodes, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseFreeFloor(%q, %v) = %+v, %v; want %+v", tt.in, tt.inodes, got, err, tt.want)
		}
		if again, err := ParseFreeFloor(got.String(), tt.inodes); err != nil || again != got {
			t.Errorf("ParseFreeFloor(%q) does not read back %q: %+v, %v", got.String(), tt.in, again, err)
		}
	}
}

// TestBelow: a resource is full below its floor, and stays full until it is clearMargin of the
// filesystem above it.
func TestBelow(t *testing.T) {
	percent := FreeFloor{Percent: 10, IsPercent: true}
	amount := FreeFloor{Amount: 10}
	for _, tt := range []struct {
		name              string
		free, total       uint64
		floor             FreeFloor
		wasFull, wantFull bool
	}{
		{"above a share", 11, 100, percent, false, false},
		{"at a share", 10, 100, percent, false, false},
		{"below a share", 9, 100, percent, false, true},
		{"full, above the share but within the margin", 11, 100, percent, true, true},
		{"full, the margin reached", 12, 100, percent, true, false},
		{"below an amount", 9, 1000, amount, false, true},
		{"full, above an amount but within the margin (a fifth of it, less than 2% of the filesystem)",
			12, 1000, amount, true, true},
		{"full, an amount and the margin reached", 13, 1000, amount, true, false},
		{"full, a share of a big filesystem: 2% of it, less than a fifth of the floor", 11_900, 100_000,
			percent, true, true},
		{"full, a share of a big filesystem, the margin reached", 12_000, 100_000, percent, true, false},
		{"no floor, nothing free", 0, 100, FreeFloor{}, true, false},
		{"a share of a filesystem without inode counts", 0, 0, percent, false, false},
		{"an amount of a filesystem without inode counts", 0, 0, amount, true, false},
		{"a huge amount", 1 << 62, 1 << 63, FreeFloor{Amount: 1<<64 - 1}, false, true},
		{"full, a huge amount: the margin does not wrap", 1 << 62, 1 << 63, FreeFloor{Amount: 1<<64 - 1}, true, true},
	} {
		if got := below(tt.free, tt.total, tt.floor, tt.wasFull); got != tt.wantFull {
			t.Errorf("%s: below(%d, %d, %v, %v) = %v, want %v", tt.name, tt.free, tt.total, tt.floor, tt.wasFull,
				got, tt.wantFull)
		}
	}
}

func TestFullnessLabel(t *testing.T) {
	for _, f := range []fullness{{}, {space: true}, {inodes: true}, {space: true, inodes: true}} {
		label := f.label()
		if got := fullnessOf(label, label != ""); got != f {
			t.Errorf("fullnessOf(%q) = %+v, want %+v", label, got, f)
		}
	}
	if got := fullnessOf("garbage", true); got != (fullness{space: true, inodes: true}) {
		t.Errorf("an unknown label value reads as %+v, want full of both", got)
	}
	if got := fullnessOf("", true); got == (fullness{}) {
		t.Errorf("an empty %s label reads as room", tarsv1beta1.LabelDiskFull)
	}
}
