# perf/tools/bars.gp - one workload's bar chart (perf/run makes one per workload).
#
# gnuplot -e "datafile='W1.dat'; outfile='chart-W1.png'; charttitle='...';
#             ylabel='...'; term='pngcairo size 900,520'" perf/tools/bars.gp
# datafile: one line per program, "program median min max" (the program's
# median figure of merit over its runs, and the lowest and highest run).
# A bar per program, in the table's order (corio first), with its min-max as
# an error bar and the median written above it.
set terminal @term
set output outfile
set title charttitle noenhanced
set ylabel ylabel noenhanced
set style fill solid 0.7 border -1
set boxwidth 0.6
set grid ytics
set yrange [0:*]
set xtics noenhanced
set key off
set offsets 0.5, 0.5, 0, 0
stats datafile using 4 nooutput
set yrange [0:STATS_max * 1.15]
plot datafile using 0:2:xtic(1) with boxes lc rgb "#4a7fb5", \
     '' using 0:2:3:4 with yerrorbars lc rgb "black" pt -1, \
     '' using 0:4:(sprintf("%.3g", $2)) with labels offset 0,0.8 noenhanced
