//go:build tools

package tools

import (
	_ "d7y.io/dragonfly/v2/cmd/manager"
	_ "d7y.io/dragonfly/v2/cmd/scheduler"
)
