//go:build race

package engine

// raceDetector is true when the tests run under the race detector.
const raceDetector = true
