// The page's one script: loads the generator with onnxruntime-web (the global `ort` from
// ort.wasm.min.js), draws fresh digits and latent walks, and exposes window.dcgan.
"use strict";

(() => {
  const SIDE = 28;
  const GRID = 8; // 8 x 8 fresh digits
  const STRIP = 10; // steps shown under the walk

  const $ = (id) => document.getElementById(id);
  const status = (text, isError = false) => {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("error", isError);
  };

  let session = null;
  let card = null;
  let queue = Promise.resolve(); // one session.run at a time: the wasm backend is not reentrant
  const timings = { load_ms: null, generate_ms: null };

  // z ~ N(0, 1) by Box-Muller on Math.random: fresh digits need no seed.
  function normal() {
    let u = 0;
    while (u === 0) u = Math.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
  }
  const noise = (n) => Array.from({ length: n }, () => Array.from({ length: card.z_dim }, normal));

  // Spherical interpolation (White, 2016): stays on the shell where Gaussian noise lives,
  // where a straight line would pass through unlikely, low-norm points.
  function slerp(a, b, t) {
    const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    const na = norm(a), nb = norm(b);
    let cos = a.reduce((s, x, i) => s + x * b[i], 0) / (na * nb);
    cos = Math.min(1, Math.max(-1, cos));
    const omega = Math.acos(cos);
    if (omega < 1e-6) return a.map((x, i) => (1 - t) * x + t * b[i]);
    const s = Math.sin(omega);
    const wa = Math.sin((1 - t) * omega) / s, wb = Math.sin(t * omega) / s;
    return a.map((x, i) => wa * x + wb * b[i]);
  }

  async function generate(z) {
    if (!session) throw new Error(window.dcgan.error || "the generator is not loaded yet; await dcgan.ready");
    if (!Array.isArray(z) || z.length === 0) throw new Error("generate(z) takes a non-empty array of noise vectors");
    const width = card.z_dim;
    const flat = new Float32Array(z.length * width);
    z.forEach((row, i) => {
      if (!row || row.length !== width) {
        throw new Error(`noise vector ${i} has length ${row ? row.length : 0}; the model takes ${width}`);
      }
      for (let j = 0; j < width; j++) {
        const v = Number(row[j]);
        if (!Number.isFinite(v)) throw new Error(`noise vector ${i} has a non-finite value at ${j}`);
        flat[i * width + j] = v;
      }
    });
    const run = async () => {
      const t0 = performance.now();
      const feeds = { [card.input]: new ort.Tensor("float32", flat, [z.length, width]) };
      const out = await session.run(feeds);
      timings.generate_ms = performance.now() - t0;
      return out[card.output].data; // Float32Array, N x 28 x 28 (x 1)
    };
    const result = queue.then(run, run);
    queue = result.catch(() => {});
    return result;
  }

  // Draw N images (pixels in [-1, 1]) as a cols-wide grid of cells scaled to fill the canvas.
  function draw(canvas, pixels, n, cols) {
    const rows = Math.ceil(n / cols);
    const small = document.createElement("canvas");
    small.width = cols * SIDE;
    small.height = rows * SIDE;
    const ctx = small.getContext("2d");
    const image = ctx.createImageData(small.width, small.height);
    for (let k = 0; k < n; k++) {
      const ox = (k % cols) * SIDE, oy = Math.floor(k / cols) * SIDE;
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          const v = Math.round((pixels[k * SIDE * SIDE + y * SIDE + x] + 1) * 127.5);
          const p = 4 * ((oy + y) * small.width + ox + x);
          image.data[p] = image.data[p + 1] = image.data[p + 2] = Math.max(0, Math.min(255, v));
          image.data[p + 3] = 255;
        }
      }
    }
    ctx.putImageData(image, 0, 0);
    const out = canvas.getContext("2d");
    out.imageSmoothingEnabled = false;
    out.clearRect(0, 0, canvas.width, canvas.height);
    out.drawImage(small, 0, 0, canvas.width, canvas.height);
  }

  async function freshGrid() {
    const pixels = await generate(noise(GRID * GRID));
    draw($("grid"), pixels, GRID * GRID, GRID);
    $("grid-time").textContent = `generated in ${timings.generate_ms.toFixed(0)} ms`;
  }

  let ends = null;
  async function showWalk() {
    const t = Number($("slider").value) / 100;
    const pixels = await generate([slerp(ends[0], ends[1], t)]);
    draw($("walk-image"), pixels, 1, 1);
  }
  async function newEnds() {
    ends = noise(2);
    const steps = Array.from({ length: STRIP }, (_, i) => slerp(ends[0], ends[1], i / (STRIP - 1)));
    draw($("strip"), await generate(steps), STRIP, STRIP);
    await showWalk();
  }

  function fmt(x, digits = 2) {
    return typeof x === "number" ? x.toLocaleString("en", { maximumFractionDigits: digits }) : String(x);
  }
  function showCard() {
    const p = card.params || {}, m = card.metrics || {};
    const rows = [
      ["Iterations", `${fmt(p["train.iterations"])} (batch ${fmt(p["train.batch_size"])}, seed ${p["train.seed"]})`],
      ["Data", p["prepare.source"]],
      ["Precision", card.precision],
      ["Adam", `G ${p["train.g_learning_rate"]}, D ${p["train.d_learning_rate"]}, β1 ${p["train.beta_1"]}`],
      ["FCD (lower is better)", `${fmt(m.fcd)} (real digits: ${fmt(m.fcd_real_floor)})`],
      ["MNIST score (of 10)", `${fmt(m.mnist_score)} (real digits: ${fmt(m.mnist_score_real)})`],
      ["Class shares", `${fmt(100 * m.min_class_share, 1)}–${fmt(100 * m.max_class_share, 1)} %`],
      ["Generator SHA-256", (card.generator_sha256 || "").slice(0, 16) + "…"],
      ["Runtime", `onnxruntime-web ${card.runtime["onnxruntime-web"]}, WebAssembly, 1 thread`],
    ];
    const dl = $("card");
    dl.replaceChildren();
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = k;
      dd.textContent = v;
      dl.append(dt, dd);
    }
    if (card.animation) {
      $("animation").src = card.animation;
      $("animation-section").hidden = false;
    }
  }

  async function load() {
    const t0 = performance.now();
    if (typeof ort === "undefined") throw new Error("onnxruntime-web (ort.wasm.min.js) did not load");
    ort.env.wasm.wasmPaths = new URL("./", location.href).href;
    ort.env.wasm.numThreads = 1; // threads need cross-origin isolation headers
    const response = await fetch("model.json");
    if (!response.ok) throw new Error(`model.json: HTTP ${response.status}`);
    card = await response.json();
    showCard();
    try {
      session = await ort.InferenceSession.create(card.model, { executionProviders: ["wasm"] });
    } catch (err) {
      throw new Error(`${card.model} is not a loadable ONNX model (${String(err.message || err).split("\n")[0]})`);
    }
    timings.load_ms = performance.now() - t0;
    status(`Ready: the generator loaded in ${timings.load_ms.toFixed(0)} ms.`);
    for (const id of ["again", "ends", "slider"]) $(id).disabled = false;
    $("again").addEventListener("click", freshGrid);
    $("grid").addEventListener("click", freshGrid);
    $("ends").addEventListener("click", newEnds);
    $("slider").addEventListener("input", showWalk);
    await freshGrid();
    await newEnds();
    return true;
  }

  window.dcgan = {
    generate,
    slerp,
    timings,
    error: null,
    get zDim() { return card ? card.z_dim : null; },
    get card() { return card; },
  };
  // Resolves true once the model is loaded and the first grid drawn, false if it could not
  // be (the reason is in dcgan.error and on the page); it never rejects.
  window.dcgan.ready = load().catch((err) => {
    window.dcgan.error = String(err.message || err);
    status(`Could not start the generator: ${window.dcgan.error}. Rebuild the site with \`dvc repro site\`.`, true);
    return false;
  });
})();
