// Command order-service runs order.service. See the README for its environment.
package main

import (
	"os"

	"github.com/go-micro-otel/reference/internal/app"
)

func main() { os.Exit(app.Main(app.Order())) }
