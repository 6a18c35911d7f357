package perf

import "strings"

var (
	smallNumberWords = [...]string{
		"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
		"ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
		"seventeen", "eighteen", "nineteen",
	}
	tensWords = [...]string{
		"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
	}
	scaleWords = [...]string{"", "thousand", "million", "billion"}
)

// NumberWords spells n out in English the way the speed suite's text column
// holds numbers: "ninety thousand five hundred eighty-four", "twenty-three
// thousand four", "seventy-nine thousand". Tens and units are joined by a
// hyphen, groups by spaces, and there is no "and". Negative numbers get a
// leading "minus"; numbers beyond the billions are spelled from their
// billions group upwards as one group.
func NumberWords(n int64) string {
	if n == 0 {
		return smallNumberWords[0]
	}
	var parts []string
	if n < 0 {
		parts = append(parts, "minus")
		n = -n
	}
	var groups []int64
	for n > 0 && len(groups) < len(scaleWords)-1 {
		groups = append(groups, n%1000)
		n /= 1000
	}
	if n > 0 {
		groups = append(groups, n)
	}
	for i := len(groups) - 1; i >= 0; i-- {
		g := groups[i]
		if g == 0 {
			continue
		}
		if i == len(scaleWords)-1 && g >= 1000 {
			// Beyond the largest named scale: spell the whole count.
			parts = append(parts, NumberWords(g))
		} else {
			parts = append(parts, groupWords(int(g)))
		}
		if scaleWords[i] != "" {
			parts = append(parts, scaleWords[i])
		}
	}
	return strings.Join(parts, " ")
}

// groupWords spells 1..999.
func groupWords(n int) string {
	var parts []string
	if h := n / 100; h > 0 {
		parts = append(parts, smallNumberWords[h], "hundred")
	}
	switch r := n % 100; {
	case r == 0:
	case r < 20:
		parts = append(parts, smallNumberWords[r])
	case r%10 == 0:
		parts = append(parts, tensWords[r/10])
	default:
		parts = append(parts, tensWords[r/10]+"-"+smallNumberWords[r%10])
	}
	return strings.Join(parts, " ")
}
