// The dashboard's charts, drawn with Chart.js (from the chartkick package, served by the portal)
// from the numbers the page carries as JSON (a data block, which the Content-Security-Policy
// lets be: it is never run). Readable without colour: every series has its own fill pattern,
// dash or point shape, and each bar or point is labelled with its value.
(function () {
  "use strict";
  const source = document.getElementById("dashboard-charts");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  const data = JSON.parse(source.textContent);
  // Okabe and Ito's palette, told apart by people with any common colour vision deficiency.
  const COLOURS = ["#0072B2", "#D55E00", "#8a5300", "#009E73", "#6c757d", "#CC79A7"];
  const PATTERNS = ["solid", "diagonal", "dots", "cross", "horizontal", "vertical"];
  const POINTS = ["circle", "triangle", "rect", "rectRot"];
  const DASHES = [[], [6, 4], [2, 3], [10, 3, 2, 3]];

  function pattern(colour, kind) {
    const size = 10;
    const tile = document.createElement("canvas");
    tile.width = size;
    tile.height = size;
    const ctx = tile.getContext("2d");
    ctx.fillStyle = colour;
    ctx.fillRect(0, 0, size, size);
    ctx.strokeStyle = "rgba(255, 255, 255, 0.85)";
    ctx.fillStyle = "rgba(255, 255, 255, 0.85)";
    ctx.lineWidth = 2;
    ctx.beginPath();
    if (kind === "diagonal") {
      ctx.moveTo(0, size);
      ctx.lineTo(size, 0);
    } else if (kind === "dots") {
      ctx.arc(size / 2, size / 2, 1.8, 0, 2 * Math.PI);
      ctx.fill();
    } else if (kind === "cross") {
      ctx.moveTo(0, 0);
      ctx.lineTo(size, size);
      ctx.moveTo(size, 0);
      ctx.lineTo(0, size);
    } else if (kind === "horizontal") {
      ctx.moveTo(0, size / 2);
      ctx.lineTo(size, size / 2);
    } else if (kind === "vertical") {
      ctx.moveTo(size / 2, 0);
      ctx.lineTo(size / 2, size);
    }
    ctx.stroke();
    return ctx.createPattern(tile, "repeat");
  }

  // Writes each bar's or point's value next to it, so no reading depends on colour or on hovering.
  const valueLabels = {
    id: "valueLabels",
    afterDatasetsDraw(chart) {
      const ctx = chart.ctx;
      const horizontal = chart.options.indexAxis === "y";
      ctx.save();
      ctx.font = "12px system-ui, sans-serif";
      ctx.fillStyle = "#212529";
      chart.data.datasets.forEach((dataset, index) => {
        const meta = chart.getDatasetMeta(index);
        if (meta.hidden) {
          return;
        }
        meta.data.forEach((element, position) => {
          const value = dataset.data[position];
          // A zero is written only beside a horizontal bar, where nothing else would show it.
          if (value === null || value === undefined || (value === 0 && !horizontal)) {
            return;
          }
          const text = String(value);
          if (horizontal) {
            ctx.textAlign = "left";
            ctx.textBaseline = "middle";
            ctx.fillText(text, element.x + 4, element.y);
          } else if (meta.type === "bar") {
            const height = Math.abs(element.base - element.y);
            if (height < 14) {
              return;
            }
            ctx.textAlign = "center";
            ctx.textBaseline = "middle";
            const width = ctx.measureText(text).width + 6;
            ctx.fillStyle = "rgba(255, 255, 255, 0.9)";
            ctx.fillRect(element.x - width / 2, (element.y + element.base) / 2 - 8, width, 16);
            ctx.fillStyle = "#212529";
            ctx.fillText(text, element.x, (element.y + element.base) / 2);
          } else {
            ctx.textAlign = "center";
            ctx.textBaseline = "bottom";
            ctx.fillText(text, element.x, element.y - 6);
          }
        });
      });
      ctx.restore();
    },
  };

  const common = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    plugins: { legend: { position: "bottom", labels: { usePointStyle: false } } },
  };

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (canvas) {
      config.plugins = [valueLabels];
      new Chart(canvas, config);
    }
  }

  draw("chart-outcomes", {
    type: "bar",
    data: {
      labels: data.weeks,
      datasets: data.outcomes.map((series, n) => ({
        label: series.label,
        data: series.values,
        backgroundColor: pattern(COLOURS[n], PATTERNS[n]),
        borderColor: "#212529",
        borderWidth: 1,
      })),
    },
    options: {
      ...common,
      scales: {
        x: { stacked: true, title: { display: true, text: "Week of submission" } },
        y: { stacked: true, beginAtZero: true, title: { display: true, text: "Requests" }, ticks: { precision: 0 } },
      },
    },
  });

  draw("chart-durations", {
    type: "line",
    data: {
      labels: data.weeks,
      datasets: data.durations.map((series, n) => ({
        label: series.label,
        data: series.values,
        borderColor: COLOURS[n],
        backgroundColor: COLOURS[n],
        borderDash: DASHES[n],
        pointStyle: POINTS[n],
        pointRadius: 5,
        spanGaps: true,
      })),
    },
    options: {
      ...common,
      plugins: { legend: { position: "bottom", labels: { usePointStyle: true } } },
      scales: {
        x: { title: { display: true, text: "Week of submission" } },
        y: { beginAtZero: true, title: { display: true, text: "Hours" } },
      },
    },
  });

  function horizontalBars(id, rows, label, axisTitle, max) {
    draw(id, {
      type: "bar",
      data: {
        labels: rows.map((row) => row.label),
        datasets: [
          {
            label: label,
            data: rows.map((row) => row.value),
            backgroundColor: pattern(COLOURS[0], "diagonal"),
            borderColor: "#212529",
            borderWidth: 1,
          },
        ],
      },
      options: {
        ...common,
        indexAxis: "y",
        plugins: { legend: { display: false } },
        scales: {
          x: { beginAtZero: true, suggestedMax: max, title: { display: true, text: axisTitle }, ticks: { precision: 0 } },
        },
      },
    });
  }

  horizontalBars("chart-failures", data.failures, "Failures", "Failed imports");
  const quotaLimit = data.quota.length ? data.quota[0].limit : undefined;
  horizontalBars("chart-quota", data.quota, "Images", "Images held, of the quota of " + quotaLimit, quotaLimit);
})();
