# perf/tools/scaling.gp - one workload's scaling chart (perf/run --scaling).
#
# gnuplot -e "datafile='scaling-W1.dat'; outfile='scaling-W1.png'; charttitle='...';
#             ylabel='...'; programs='corio go'; maxk=2; term='pngcairo'" perf/tools/scaling.gp
# datafile: "workers program figure" lines; one line per program in programs,
# the figure against the worker count (one run per point).
set terminal @term
set output outfile
set title charttitle noenhanced
set ylabel ylabel noenhanced
set xlabel "workers (threads of the runtime)"
set grid
set yrange [0:*]
set xrange [0.5:maxk + 0.5]
set xtics 1
set key outside right top noenhanced
plot for [p in programs] datafile using 1:(strcol(2) eq p ? $3 : NaN) with linespoints lw 2 pt 7 title p
