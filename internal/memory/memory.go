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
// Package memory keeps a long-running process's resident memory to what it goes on using.
package memory

// ReleaseStartupPages gives back the resident pages of the program's own code and read-only
// data that only its start-up touched, and has the kernel map single pages on later faults.
// It returns how many bytes of the executable's pages were resident before and are not after.
//
// Go runs every package's initialisation before main: client-go and controller-runtime register
// every built-in API group then, touching megabytes of code and tables a node agent never runs
// again. On top of that the kernel maps up to 64 KiB around each page fault of a file mapping
// (fault-around). All of it stays in the process's resident set for as long as it runs. The
// read-only mappings are backed by the executable, so a page dropped here that is needed again
// is faulted back in from the page cache; writable mappings (the data segment) are never touched.
// On systems other than Linux it does nothing.
func ReleaseStartupPages() (int64, error) {
	return releaseStartupPages()
}
