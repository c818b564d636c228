package data

import "math"

func moments(x []float32) (mean, std float64) {
	var s, sq float64
	for _, v := range x {
		s += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(x))
	mean = s / n
	return mean, math.Sqrt(sq/n - mean*mean)
}

// featureMoments returns the largest |mean| and |std-1| over the features.
func featureMoments(x []float32, features int) (maxMean, maxStdDev float64) {
	n := len(x) / features
	for j := range features {
		var s, sq float64
		for i := range n {
			v := float64(x[i*features+j])
			s += v
			sq += v * v
		}
		m := s / float64(n)
		sd := math.Sqrt(sq/float64(n) - m*m)
		maxMean = max(maxMean, math.Abs(m))
		maxStdDev = max(maxStdDev, math.Abs(sd-1))
	}
	return maxMean, maxStdDev
}

func abs(v float64) float64 { return math.Abs(v) }
