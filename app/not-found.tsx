import Link from "next/link";

export default function NotFound() {
  return (
    <main className="mx-auto max-w-lg px-6 py-24 text-center">
      <p className="text-sm font-semibold text-indigo-600">404</p>
      <h1 className="mt-2 text-2xl font-semibold text-slate-900">Not found</h1>
      <p className="mt-2 text-sm text-slate-600">This page does not exist, or it belongs to a tenant you cannot see.</p>
      <Link href="/" className="mt-6 inline-block rounded-md bg-indigo-600 px-3 py-1.5 text-sm font-medium text-white">
        Go to overview
      </Link>
    </main>
  );
}
