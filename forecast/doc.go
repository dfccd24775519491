// Package forecast holds greenq's carbon signal: the normalised Series every
// region's intensity is expressed in, the Provider interface each adapter
// sub-package implements, and greenq's own forecaster for horizons no
// provider covers. Its core imports only the standard library.
package forecast
