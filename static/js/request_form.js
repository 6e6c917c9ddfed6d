// Improves the request form; without JavaScript it works the same, with fewer conveniences.
// Adds tag rows without a round trip. Without JavaScript the form still works: it always
// carries one empty row, and a removed row is a ticked "Remove" box.
(function () {
  "use strict";
  // Suggest the chosen target's own Windows AMIs in the AMI field.
  const targetSelect = document.getElementById("id_target");
  const amiInput = document.getElementById("id_ec2_image_id");
  if (targetSelect && amiInput) {
    targetSelect.addEventListener("change", function () {
      const list = document.getElementById("amis-" + targetSelect.value);
      if (list) amiInput.setAttribute("list", list.id);
      else amiInput.removeAttribute("list");
    });
  }
})();

(function () {
  "use strict";
  const rows = document.getElementById("tag-rows");
  const template = document.getElementById("tag-row-template");
  const addButton = document.getElementById("add-tag");
  const total = document.getElementById("id_tags-TOTAL_FORMS");
  const maxForms = document.getElementById("id_tags-MAX_NUM_FORMS");
  if (!rows || !template || !addButton || !total) return;
  addButton.hidden = false;
  const hint = document.getElementById("tags-nojs-hint");
  if (hint) hint.hidden = true;

  addButton.addEventListener("click", function () {
    const index = parseInt(total.value, 10);
    if (maxForms && index >= parseInt(maxForms.value, 10)) return;
    const html = template.innerHTML
      .replace(/__prefix__/g, String(index))
      .replace(/__number__/g, String(index + 1));
    rows.insertAdjacentHTML("beforeend", html);
    total.value = String(index + 1);
    const added = rows.lastElementChild.querySelector("input[type=text]");
    if (added) added.focus();
  });
})();

// Narrow the form as the requester chooses, so an impossible combination cannot be picked:
// only the chosen import path's fields show; Windows 11 takes away PCoIP; G6 and G7 compute
// need DCV; Office follows the Windows version and the process; the Image Builder source shows
// only its own field. After the import: the bundle's settings show only while a bundle is asked
// for, its hardware narrows to the compute types the image runs (imports/plan.py's table, which
// the page carries as JSON data), and a copy's bundle is off without the bundle. Without
// JavaScript every field shows and the server refuses what AWS would (imports/rules.py,
// imports/plan.py); the rules here mirror those, never replace them.
(function () {
  "use strict";
  const form = document.querySelector("form.request-form");
  if (!form) return;
  const byId = function (id) { return document.getElementById(id); };
  const windows = byId("id_windows_version");
  const process = byId("id_ingestion_process");
  const office = byId("id_office");
  const protocol = byId("id_protocol");
  const compute = byId("id_compute_type");
  const sourceKind = byId("id_source_kind");
  const sourceFields = { ami: "id_ec2_image_id", import_task: "id_ec2_import_task_id", image_version: "id_image_build_version_arn" };
  const DCV_ONLY = ["GRAPHICS_G6", "GRAPHICS_G7"];
  const bundle = byId("id_bundle");
  const bundleCompute = byId("id_bundle_compute_type");
  const copyBundles = byId("id_copy_bundles");
  const bundleTable = byId("bundle-compute-types");
  const bundleTypes = bundleTable ? JSON.parse(bundleTable.textContent) : {};

  function fieldWrapper(id) {
    const input = byId(id);
    return input ? (input.closest(".mb-3") || input.parentElement) : null;
  }
  function showField(id, shown) {
    const wrapper = fieldWrapper(id);
    if (wrapper) wrapper.hidden = !shown;
  }
  // Disable the options `allowed` refuses; a chosen one that becomes impossible is cleared.
  function narrow(select, allowed) {
    if (!select) return;
    Array.prototype.forEach.call(select.options, function (option) {
      option.disabled = option.value !== "" && !allowed(option.value);
      option.hidden = option.disabled;
    });
    const chosen = select.options[select.selectedIndex];
    if (chosen && chosen.disabled) select.value = "";
  }
  function path() {
    const checked = form.querySelector("input[name=import_path]:checked");
    return checked ? checked.value : "classic";
  }

  function update() {
    const imageBuilder = path() === "image_builder";
    const classicSet = byId("path-classic");
    const builderSet = byId("path-image-builder");
    if (classicSet) classicSet.hidden = imageBuilder;
    if (builderSet) builderSet.hidden = !imageBuilder;
    const win11 = windows && windows.value === "11";

    // The AMI field belongs to the classic path, and to the Image Builder path's AMI source.
    const amiInput = byId("id_ec2_image_id");
    if (amiInput) {
      const kind = sourceKind ? sourceKind.value : "";
      const wrapper = fieldWrapper("id_ec2_image_id");
      if (imageBuilder && kind === "ami" && builderSet && wrapper && wrapper.parentElement !== builderSet) {
        sourceKind.closest(".mb-3").after(wrapper);
      } else if (!imageBuilder && classicSet && wrapper && wrapper.parentElement !== classicSet) {
        classicSet.querySelector("legend").after(wrapper);
      }
      if (wrapper) wrapper.hidden = imageBuilder && kind !== "ami";
    }
    if (sourceKind) {
      showField("id_ec2_import_task_id", sourceKind.value === "import_task");
      showField("id_image_build_version_arn", sourceKind.value === "image_version");
    }

    // Windows 11 streams with DCV (WSP) or BYOP, never PCoIP.
    narrow(process, function (value) { return !(win11 && !/_WSP$|_BYOP$/.test(value)); });
    narrow(protocol, function (value) {
      if (win11 && value === "PCOIP") return false;
      return !(compute && DCV_ONLY.indexOf(compute.value) >= 0 && value !== "DCV");
    });
    narrow(compute, function (value) {
      return !(protocol && protocol.value && protocol.value !== "DCV" && DCV_ONLY.indexOf(value) >= 0);
    });
    // Office with Windows 11 and WSP: Office 2019 on regular bundles, none on GPU bundles.
    const chosenProcess = process ? process.value : "";
    narrow(office, function (value) {
      if (!win11 || !/_WSP$/.test(chosenProcess)) return true;
      return chosenProcess.indexOf("GRAPHICS") < 0 && value === "Microsoft_Office_2019";
    });

    // The bundle: its settings with its box; its hardware by the image's process or compute type
    // (any, while that is not chosen).
    const bundleSet = byId("plan-bundle");
    if (bundle && bundleSet) bundleSet.hidden = !bundle.checked;
    if (bundle && copyBundles) copyBundles.disabled = !bundle.checked;
    const imageKind = imageBuilder ? (compute ? compute.value : "") : chosenProcess;
    const allowedTypes = (bundleTypes[path()] || {})[imageKind];
    narrow(bundleCompute, function (value) { return !allowedTypes || allowedTypes.indexOf(value) >= 0; });
  }

  form.addEventListener("change", update);
  update();
})();
