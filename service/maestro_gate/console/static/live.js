// The live count of pending approvals in the navigation, refreshed without reloading.
const badge = document.getElementById("pending-count");

async function refresh() {
  try {
    const response = await fetch(badge.dataset.live, { credentials: "same-origin" });
    if (response.ok) badge.textContent = String((await response.json()).pending);
  } catch {
    badge.textContent = "?";
  }
}

if (badge) {
  refresh();
  setInterval(refresh, Number(badge.dataset.every || 3000));
}
