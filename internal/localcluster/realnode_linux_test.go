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

package localcluster

import "testing"

// TestUnescapeMountinfo: mountinfo escapes spaces, tabs, newlines and backslashes in octal; a
// mount point with them must be found, or removing a state directory could reach through it.
func TestUnescapeMountinfo(t *testing.T) {
	for field, want := range map[string]string{
		`/work/main/.local/nodes/real-1`: "/work/main/.local/nodes/real-1",
		`/a\040b/c\011d`:                 "/a b/c\td",
		`/back\134slash`:                 `/back\slash`,
		`/quote"d`:                       `/quote"d`,
	} {
		if got := unescapeMountinfo(field); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", field, got, want)
		}
	}
}
