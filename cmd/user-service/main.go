// Command user-service runs user.service. See the README for its environment.
package main

import (
	"os"

	"github.com/go-micro-otel/reference/internal/app"
)

func main() { os.Exit(app.Main(app.User())) }
