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

package memory

import "testing"

func TestReleaseStartupPages(t *testing.T) {
	before, err := residentFileBytes()
	if err != nil {
		t.Fatal(err)
	}
	released, err := ReleaseStartupPages()
	if err != nil {
		t.Fatalf("ReleaseStartupPages: %v", err)
	}
	after, err := residentFileBytes()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("resident file pages: %d KiB before, %d KiB after, %d KiB released", before>>10, after>>10, released>>10)
	if released <= 0 || after >= before {
		t.Errorf("released %d bytes; resident file pages went from %d to %d bytes, want fewer", released, before, after)
	}
	// The program runs on: what it needs again comes back from the page cache.
	if _, err := ReleaseStartupPages(); err != nil {
		t.Errorf("second ReleaseStartupPages: %v", err)
	}
}
