//go:build race

package tarindex

// raceEnabled shrinks the generated layers: the race detector slows
// inflate and the test encoders down about tenfold.
const raceEnabled = true
