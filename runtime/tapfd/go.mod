module caas.dev/tapfd

go 1.19
