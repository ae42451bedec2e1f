// Shared by the root layout (a server component) and the theme toggle (client): plain constants, no "use client".

export const THEME_KEY = "mandate.theme";

/**
 * Runs in <head> before the first paint (app/layout.tsx): the stored choice, or
 * the system's preference, becomes the `dark` class on <html>. Kept tiny and
 * free of interpolation: it is inline script text.
 */
export const THEME_SCRIPT = `(function(){try{var c=localStorage.getItem("${THEME_KEY}");var d=c==="dark"||(c!=="light"&&matchMedia("(prefers-color-scheme: dark)").matches);document.documentElement.classList.toggle("dark",d)}catch(e){}})()`;
