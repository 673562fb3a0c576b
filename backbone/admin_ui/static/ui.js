// The Admin UI's only script: forms that change something important ask first. Without it the
// forms work the same, without the question.
"use strict";

document.addEventListener("submit", (event) => {
    const question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
        event.preventDefault();
    }
});
