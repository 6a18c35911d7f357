package build

// CheckClosure is checkClosure, for the end-to-end tests of package
// build_test.
var CheckClosure = checkClosure
