module caas.dev/guest-agent

go 1.19
