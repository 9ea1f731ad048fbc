// Finding the page's elements, typed: the template and the scripts must agree, and a missing
// hook fails at start-up, not at the first click.

/**
 * The element `selector` names under `root`.
 * @template {Element} [T=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @param {{new (): T, prototype: T}} [type]  what it must be (default: an HTMLElement)
 * @returns {T}
 */
export function one(root, selector, type) {
  const element = root.querySelector(selector);
  const expected = type ?? HTMLElement;
  if (!(element instanceof expected)) throw new Error(`demo page: no ${expected.name} ${selector}`);
  return /** @type {T} */ (element);
}

/**
 * The control of `form` named `name` (an input, select or textarea: all have a `value`).
 * @param {HTMLFormElement} form
 * @param {string} name
 * @returns {HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement}
 */
export function control(form, name) {
  const element = form.elements.namedItem(name);
  if (
    element instanceof HTMLInputElement ||
    element instanceof HTMLSelectElement ||
    element instanceof HTMLTextAreaElement
  ) {
    return element;
  }
  throw new Error(`demo page: no control ${name}`);
}
