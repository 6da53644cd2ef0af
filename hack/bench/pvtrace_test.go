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

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A binding as kube-controller-manager 1.37 logs it with pvControllerVerbosity: the volume's phase
// saved in 10 ms, the claim's volumeName in 20 ms and its phase in 5 ms; then a resync of the
// bound claim that skips all three, and a claim of another run. Each line is written in two pieces:
// the message, then its pairs.
const pvControllerLog = `I1203 13:26:22.100000   12604 pv_controller.go:1103] "Binding volume to claim" ` +
	`PVC="r1/data0-r1-s5-1" volumeName="r1-data0-r1-s5-ffad5c73"` + "\n" +
	`I1203 13:26:22.100100   12604 pv_controller.go:915] "Updating PersistentVolume" ` +
	`volumeName="r1-data0-r1-s5-ffad5c73" setPhase="Bound"` + "\n" +
	`I1203 13:26:22.110100   12604 pv_controller.go:936] "Volume entered phase" ` +
	`volumeName="r1-data0-r1-s5-ffad5c73" phase="Bound"` + "\n" +
	`I1203 13:26:22.110200   12604 pv_controller.go:1040] "Updating PersistentVolumeClaim: binding to volume" ` +
	`PVC="r1/data0-r1-s5-1" volumeName="r1-data0-r1-s5-ffad5c73"` + "\n" +
	`I1203 13:26:22.130200   12604 pv_controller.go:1083] "Updating PersistentVolumeClaim: bound to volume" ` +
	`PVC="r1/data0-r1-s5-1" volumeName="r1-data0-r1-s5-ffad5c73"` + "\n" +
	`I1203 13:26:22.130300   12604 pv_controller.go:787] "Updating PersistentVolumeClaim status" ` +
	`PVC="r1/data0-r1-s5-1" setPhase="Bound"` + "\n" +
	`I1203 13:26:22.135300   12604 pv_controller.go:877] "Claim entered phase" ` +
	`PVC="r1/data0-r1-s5-1" phase="Bound"` + "\n" +
	`I1203 13:26:29.138508   12604 pv_controller.go:1103] "Binding volume to claim" ` +
	`PVC="r1/data0-r1-s5-1" volumeName="r1-data0-r1-s5-ffad5c73"` + "\n" +
	`I1203 13:26:29.138516   12604 pv_controller.go:915] "Updating PersistentVolume" ` +
	`volumeName="r1-data0-r1-s5-ffad5c73" setPhase="Bound"` + "\n" +
	`I1203 13:26:29.138534   12604 pv_controller.go:918] "Updating PersistentVolume: phase already set" ` +
	`volumeName="r1-data0-r1-s5-ffad5c73" phase="Bound"` + "\n" +
	`I1203 13:26:29.138560   12604 pv_controller.go:1040] "Updating PersistentVolumeClaim: binding to volume" ` +
	`PVC="r1/data0-r1-s5-1" volumeName="r1-data0-r1-s5-ffad5c73"` + "\n" +
	`I1203 13:26:29.138575   12604 pv_controller.go:1087] "Updating PersistentVolumeClaim: already bound to volume" ` +
	`PVC="r1/data0-r1-s5-1" volumeName="r1-data0-r1-s5-ffad5c73"` + "\n" +
	`I1203 13:26:29.138585   12604 pv_controller.go:787] "Updating PersistentVolumeClaim status" ` +
	`PVC="r1/data0-r1-s5-1" setPhase="Bound"` + "\n" +
	`I1203 13:26:29.138605   12604 pv_controller.go:863] "Updating PersistentVolumeClaim status, phase already set" ` +
	`PVC="r1/data0-r1-s5-1" phase="Bound"` + "\n" +
	`I1203 13:26:30.000000   12604 pv_controller.go:877] "Claim entered phase" ` +
	`PVC="r10/data0-r10-s5-1" phase="Bound"` + "\n"

func TestPVControllerTrace(t *testing.T) {
	log := filepath.Join(t.TempDir(), "kube-controller-manager.log")
	if err := os.WriteFile(log, []byte(pvControllerLog), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := pvControllerTrace(log, "r1")
	if err != nil {
		t.Fatal(err)
	}
	want := "PV controller: 1 claims bound 0.04 s after its first binding, 0.04 s of it in writes: " +
		"volume phase 1 made (p50 10.0 ms, 0.01 s), 1 skipped; claim volumeName 1 made (p50 20.0 ms, 0.02 s), 1 skipped; " +
		"claim phase 1 made (p50 5.0 ms, 0.01 s), 1 skipped"
	if got != want {
		t.Errorf("trace\n got %s\nwant %s", got, want)
	}
	if _, err := pvControllerTrace(log, "r2"); err == nil || !strings.Contains(err.Error(), "no binding of r2") {
		t.Errorf("a run without bindings: got error %v", err)
	}
}
