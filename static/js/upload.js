// Upload page: drag and drop, a type and size check before anything is sent, and an upload progress bar.
// Without JavaScript the form still posts normally.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form) return;
  const input = document.getElementById("video-input");
  const zone = document.getElementById("dropzone");
  const chosen = document.getElementById("chosen-file");
  const errorBox = document.getElementById("upload-error");
  const progress = document.getElementById("upload-progress");
  const fill = document.getElementById("upload-fill");
  const label = document.getElementById("upload-label");
  const submit = document.getElementById("submit");
  const maxBytes = Number(form.dataset.maxBytes);
  const extensions = form.dataset.extensions.split(",");

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  function megabytes(bytes) {
    return (bytes / (1024 * 1024)).toFixed(1) + " MB";
  }

  function check(file) {
    if (!file) return "Choose a video file to upload.";
    const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
    if (!extensions.includes(extension)) {
      return "'" + file.name + "' is not a video file we accept (" + extensions.map((e) => "." + e).join(", ") + ").";
    }
    if (file.size === 0) return "'" + file.name + "' is empty.";
    if (file.size > maxBytes) {
      return "'" + file.name + "' is " + megabytes(file.size) + "; the limit is " + megabytes(maxBytes) + ".";
    }
    return "";
  }

  function chose() {
    const file = input.files[0];
    chosen.textContent = file ? file.name + " (" + megabytes(file.size) + ")" : "";
    showError(file ? check(file) : "");
  }

  input.addEventListener("change", chose);
  ["dragenter", "dragover"].forEach((type) =>
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.add("dragging"); }));
  ["dragleave", "drop"].forEach((type) =>
    zone.addEventListener(type, (event) => { event.preventDefault(); zone.classList.remove("dragging"); }));
  zone.addEventListener("drop", (event) => {
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      chose();
    }
  });

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const problem = check(input.files[0]);
    if (problem) { showError(problem); return; }
    showError("");
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (e) => {
      if (!e.lengthComputable) return;
      const percent = Math.round((100 * e.loaded) / e.total);
      fill.style.width = percent + "%";
      label.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Checking the video…";
    });
    request.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(request.responseText); } catch (e) { body = null; }
      if (request.status === 202 && body && body.url) {
        label.textContent = "Uploaded. Opening the analysis…";
        window.location.assign(body.url);
        return;
      }
      progress.hidden = true;
      submit.disabled = false;
      showError(body && body.error ? body.error.message : "The upload failed (HTTP " + request.status + "). Try again.");
    });
    request.addEventListener("error", () => {
      progress.hidden = true;
      submit.disabled = false;
      showError("The connection broke during the upload. Check your network and try again.");
    });
    progress.hidden = false;
    fill.style.width = "0%";
    label.textContent = "Uploading…";
    submit.disabled = true;
    request.send(new FormData(form));
  });
})();
