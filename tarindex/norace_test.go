//go:build !race

package tarindex

const raceEnabled = false
