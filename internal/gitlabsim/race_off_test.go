//go:build !race

package gitlabsim_test

const raceEnabled = false
