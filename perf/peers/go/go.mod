module corio/perf/peers/go

go 1.19
