// Package migrations embeds mcpidp's own SQL migrations, one folder per
// dialect. Files are named NNNN_name.up.sql and NNNN_name.down.sql; the same
// version number must exist in both dialects so one schema version means the
// same tables everywhere. River's own tables are migrated by rivermigrate.
package migrations

import "embed"

// FS holds postgres/*.sql and sqlite/*.sql.
//
//go:embed postgres/*.sql sqlite/*.sql
var FS embed.FS
