package wrapper

// ScopeName is the instrumentation scope of every span and metric this package records. It
// names the package as a user of it knows it, not where this repository keeps it.
const ScopeName = "github.com/go-micro-otel/reference/wrapper"

// Version is the instrumentation version reported with ScopeName.
const Version = "0.2.0"
